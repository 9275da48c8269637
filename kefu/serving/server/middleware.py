"""ASGI middleware: request ids, metrics, the access log, the body read, last-resort 500.

Plain ASGI classes rather than `@app.middleware("http")`: they add a few microseconds, not a
task per request, and they see every response, including the errors of other middleware.
Outermost first: `RequestContextMiddleware` (ids, 499, nosniff, drain), `UnreadBodyMiddleware`
(`unread_body.py`: the body left over by an early answer), `GateMiddleware`
(`gate.py`: load shedding and credentials from the request head), `BodyReadMiddleware` (size,
time limit and encoding of the body), then FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu.errors import KefuError, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from kefu.serving.server.access_log import ACCESS_LOGGER
from kefu.serving.server.drain import Drain
from kefu.serving.server.error_responses import error_response, kefu_error_response, shown
from kefu.serving.server.metrics import Metrics
from kefu.serving.server.protocol import ANSWERED_KEY

access_log = logging.getLogger(ACCESS_LOGGER)
error_log = logging.getLogger("kefu.error")

REQUEST_ID_HEADER = "X-Request-ID"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that hung up before the answer
# A caller's request id is echoed only when it is short and plain (it goes into logs).
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# json.loads(bytes) would quietly decode UTF-16 and UTF-32; the API is UTF-8 only.
_UTF16_OR_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_GZIP_MAGIC = b"\x1f\x8b"
# Transfer codings the HTTP layer undoes (chunked) or that change nothing (identity)
_PLAIN_TRANSFER_CODINGS = {"chunked", "identity", ""}


def _documentation_route(path: str) -> str:
    """The schema and docs pages (FastAPI's own routes and the docs' static files) under their
    own bounded labels, not among the 404 scans of "unmatched"."""
    if path == "/openapi.json":
        return path
    return "/docs" if path == "/docs" or path.startswith("/docs/") else "unmatched"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _declared_coding(scope: Scope) -> str | None:
    """The header declaring a compression of the body, which kefu does not undo: a
    Content-Encoding other than identity, or a Transfer-Encoding coding other than chunked
    (`gzip, chunked`: uvicorn undoes the chunks only), as `Name: value`; None when plain."""
    encoding = _header(scope, b"content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        return f"Content-Encoding: {encoding}"
    transfer = _header(scope, b"transfer-encoding")
    codings = {coding.strip().lower() for coding in (transfer or "").split(",")}
    if transfer is not None and not codings <= _PLAIN_TRANSFER_CODINGS:
        return f"Transfer-Encoding: {transfer}"
    return None


class RequestContextMiddleware:
    """Outermost layer: request id in, X-Request-ID out, one metric and one log line per request
    (but for one the HTTP protocol answered itself, `protocol.py`, which counts it).

    Handlers add log fields through `request.state.log` (a dict). An exception no handler
    mapped becomes a 500 JSON body here, after the traceback went to the error log. A client
    that hung up before its answer (seen as `http.disconnect`, or as the request task being
    cancelled because of it, see `watch_disconnect`) is counted as 499, not as an error.
    Every answer carries `X-Content-Type-Options: nosniff`, and while the server drains after
    SIGTERM also `Connection: close`, so kept-alive clients reconnect elsewhere.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, drain: Drain):
        self.app = app
        self.metrics = metrics
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _SAFE_REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
        )
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["log"] = {}
        response: dict[str, Any] = {"status": 500, "started": False, "gone": False}
        drain = self.drain

        async def receive_watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                response["gone"] = True
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"], response["started"] = message["status"], True
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                headers["X-Content-Type-Options"] = "nosniff"
                if drain.draining:
                    headers["Connection"] = "close"
            await send(message)

        drain.active += 1
        try:
            await self.app(scope, receive_watched, send_with_id)
        except asyncio.CancelledError:
            if not response["started"]:
                response["status"] = CLIENT_CLOSED_REQUEST
            if not state.get("client_gone"):
                raise
            # watch_disconnect cancelled this request because its client left: done, not failed
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception:
            error_log.exception("unhandled error", extra={"fields": {"request_id": request_id}})
            if not response["started"]:
                reply = error_response(
                    500,
                    "internal_error",
                    f"internal error; quote request id {request_id}",
                    headers={REQUEST_ID_HEADER: request_id},
                )
                await reply(scope, receive, send_with_id)
                response["status"] = 500
        finally:
            drain.active -= 1
            if not state.get(ANSWERED_KEY):  # else the HTTP protocol answered and counted it
                if not response["started"] and (response["gone"] or state.get("client_gone")):
                    response["status"] = CLIENT_CLOSED_REQUEST
                self._record(scope, response["status"], time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        """The request's metric and access-log line."""
        state = scope["state"]
        route = (
            getattr(scope.get("route"), "path", None)
            or state.get("route")
            or _documentation_route(scope["path"])
        )
        self.metrics.observe_request(route, scope["method"], status, seconds)
        fields = {
            "request_id": state["request_id"],
            "method": scope["method"],
            "path": scope["path"][:200],
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            **state.get("log", {}),
        }
        if access_log.isEnabledFor(logging.INFO):
            # made directly: `Logger.info` would walk the stack for a caller nobody logs
            record = access_log.makeRecord(
                ACCESS_LOGGER, logging.INFO, __file__, 0, "request", (), None
            )
            record.fields = fields
            access_log.handle(record)


def watch_disconnect(scope: Scope, receive: Receive) -> asyncio.Task:
    """Cancel the current request when its client hangs up; cancel the returned task when done.

    Call it once the body has been read: the next ASGI message is then `http.disconnect`, sent
    when the connection drops. Cancelling the request cancels its queued messages, which the
    micro-batcher then skips instead of spending model time on an answer nobody reads.
    """
    request_task = asyncio.current_task()

    async def wait_for_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope["state"]["client_gone"] = True
        if request_task is not None:
            request_task.cancel()

    return asyncio.get_running_loop().create_task(wait_for_disconnect())


class BodyReadMiddleware:
    """Reads the whole body before the app sees it: size, time and encoding limits.

    413 for bodies over `max_bytes` (by Content-Length, or by counting a chunked body, so an
    oversized upload stops at the limit instead of filling memory); 408 with `Connection:
    close` when the body has not fully arrived within `timeout_seconds` of the request head
    (a slow or stalled client holds a connection and a task, never more); 415 for bodies
    declared compressed (their bytes would otherwise be misread as UTF-16); 400 for gzip bytes
    declared as nothing, and for UTF-16/32 bodies. The body is then replayed to the app in one message.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float, retry_after: int):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.timeout_seconds):
                body = await self._read(scope, receive)
        except TimeoutError:
            body = RequestTimeout(
                f"the request body did not arrive within {self.timeout_seconds:g} seconds "
                "(KEFU_BODY_TIMEOUT_SECONDS); send the whole body at once"
            )
        if body is None:  # the client hung up while sending
            return
        if isinstance(body, Exception):
            await kefu_error_response(body, self.retry_after)(scope, receive, send)  # type: ignore[arg-type]
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | Exception | None:
        if (coding := _declared_coding(scope)) is not None:
            return UnsupportedMediaType(
                f"request body is compressed ({shown(coding)}); send it uncompressed as UTF-8 JSON"
            )
        declared = _header(scope, b"content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > self.max_bytes
        ):
            return self._too_large()
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return self._too_large()
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body.startswith(_GZIP_MAGIC):  # its third byte is 0, as UTF-16's would be
            return KefuError(
                "request body is gzip data, not JSON (and no Content-Encoding says so); "
                "send it uncompressed as UTF-8 JSON",
                code="invalid_json",
            )
        if body.startswith(_UTF16_OR_32_BOMS) or b"\x00" in body[:4]:
            return KefuError(  # KefuError's own status: 400, as for any undecodable body
                "request body is not UTF-8 (it looks like UTF-16 or UTF-32); send UTF-8 JSON",
                code="invalid_json",
            )
        return body

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"request body is larger than {self.max_bytes} bytes (KEFU_MAX_BODY_BYTES); "
            "send fewer or shorter messages per request",
            code="body_too_large",
        )
