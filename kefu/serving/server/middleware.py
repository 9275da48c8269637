"""ASGI middleware: request ids, metrics, the access log, body-size limit, last-resort 500.

Plain ASGI classes rather than `@app.middleware("http")`: they add a few microseconds, not a
task per request, and they see every response, including the errors of other middleware.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu.serving.server.error_responses import error_response
from kefu.serving.server.observability import Metrics

access_log = logging.getLogger("kefu.access")
error_log = logging.getLogger("kefu.error")

REQUEST_ID_HEADER = "X-Request-ID"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that hung up before the answer
# A caller's request id is echoed only when it is short and plain (it goes into logs).
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Outermost layer: request id in, X-Request-ID out, one metric and one log line per request.

    Handlers add log fields through `request.state.log` (a dict). An exception no handler
    mapped becomes a 500 JSON body here, after the traceback went to the error log.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        )
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["log"] = {}
        response: dict[str, Any] = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"], response["started"] = message["status"], True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not response["started"]:
                response["status"] = CLIENT_CLOSED_REQUEST
            raise
        except Exception:
            error_log.exception("unhandled error", extra={"fields": {"request_id": request_id}})
            if not response["started"]:
                reply = error_response(
                    500,
                    "internal_error",
                    f"internal error; quote request id {request_id}",
                    headers={REQUEST_ID_HEADER: request_id},
                )
                await reply(scope, receive, send)
                response["status"] = 500
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(route, scope["method"], response["status"], seconds)
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": response["status"],
                "duration_ms": round(seconds * 1000, 3),
                **state.get("log", {}),
            }
            access_log.info("request", extra={"fields": fields})


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`, by Content-Length or by counting a chunked body.

    The body is read here (the handler reads all of it anyway) and replayed to the app, so an
    oversized upload stops at the limit instead of filling memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = error_response(
            413,
            "body_too_large",
            f"request body is larger than {self.max_bytes} bytes (KEFU_MAX_BODY_BYTES); "
            "send fewer or shorter messages per request",
        )
        await reply(scope, receive, send)
