"""Answers given before the request body was read: the rest of the body may not hold a connection.

The gate (401, 403, 503) and the body reader (413 by Content-Length, 415 for a compressed body)
answer from the request head. uvicorn then reads the body the client still sends and drops it,
with no time limit: each byte restarts its keep-alive timer, so a client could trickle the body
of a refused request for as long as it liked, past `KEFU_BODY_TIMEOUT_SECONDS`. This layer holds
such an answer until the body is in (as it nearly always is already: it comes in the head's
packet) and sends it as it was, connection kept; when the body does not arrive in full within
the body timeout of the head, when it is declared or counted larger than `KEFU_MAX_BODY_BYTES`
(never worth reading on: a chunked body the reader stopped at the limit is not read further),
or when the client waits for `100 Continue` (a refusal never asks for the body, so the
connection cannot carry another request), the answer goes out with `Connection: close` and
uvicorn closes the connection after it.
"""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _declared_body(scope: Scope) -> tuple[int | None, bool, bool]:
    """(Content-Length or None, chunked, Expect: 100-continue) from the request head."""
    length, chunked, expect = None, False, False
    for key, value in scope.get("headers", ()):
        if key == b"content-length" and value.isdigit():
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"expect":
            expect = value.strip().lower() == b"100-continue"
    return length, chunked, expect


class UnreadBodyMiddleware:
    """Settle the unread rest of a request body before an early answer goes out (see above)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, chunked, expect = _declared_body(scope)
        if not chunked and not length:  # no body: nothing can be left unread
            await self.app(scope, receive, send)
            return
        head_seen = time.monotonic()
        body = {"asked": False, "done": False, "bytes": 0}  # bytes: received so far
        held: list[Message] = []

        async def receive_tracked() -> Message:
            body["asked"] = True
            message = await receive()
            body["bytes"] += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                body["done"] = True
            return message

        async def send_settled(message: Message) -> None:
            if body["done"] or not (held or message["type"] == "http.response.start"):
                await send(message)
                return
            if message["type"] == "http.response.start":
                held.append(message)  # sent with the body, once the rest of the request is in
                return
            start = held.pop()
            if message.get("more_body", False) or not await self._drop_rest(
                receive_tracked, body, length, expect and not body["asked"], head_seen
            ):
                MutableHeaders(scope=start)["Connection"] = "close"
            await send(start)
            await send(message)

        await self.app(scope, receive_tracked, send_settled)

    async def _drop_rest(
        self,
        receive: Receive,
        body: dict[str, int],
        length: int | None,
        awaits_continue: bool,
        head_seen: float,
    ) -> bool:
        """Read and drop the rest of the body (`receive` counts its bytes in `body["bytes"]`);
        False when the connection must close instead: a body over `max_bytes`, declared or
        already counted (a chunked body the reader stopped at the limit), is never read on."""
        if awaits_continue or max(length or 0, body["bytes"]) > self.max_bytes:
            return False
        try:
            async with asyncio.timeout(head_seen + self.timeout_seconds - time.monotonic()):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return False  # the client hung up
                    if not message.get("more_body", False):
                        return True
                    if body["bytes"] > self.max_bytes:
                        return False
        except TimeoutError:
            return False
