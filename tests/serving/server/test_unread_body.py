"""The unread rest of a request body after an early answer, at the ASGI level: what is read of
it, and whether the answer keeps the connection (`Connection: close` otherwise)."""

from __future__ import annotations

import asyncio

from kefu.serving.server.middleware import BodyReadMiddleware
from kefu.serving.server.unread_body import UnreadBodyMiddleware

MAX_BYTES = 5000
CHUNKED = [(b"transfer-encoding", b"chunked")]


async def refuse(scope, receive, send):
    """An answer from the request head, as the gate's 401: the body is never asked for."""
    await send({"type": "http.response.start", "status": 401, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def run(app, messages, headers=CHUNKED):
    """(bytes the client sent before the answer went out, status, Connection header)."""
    stack = UnreadBodyMiddleware(app, max_bytes=MAX_BYTES, timeout_seconds=5)
    pending, sent = iter(messages), []

    async def receive():
        return next(pending)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/classify", "headers": headers}
    asyncio.run(stack(scope, receive, send))
    read = sum(len(message.get("body", b"")) for message in messages) - sum(
        len(message.get("body", b"")) for message in pending
    )
    return read, sent[0]["status"], dict(sent[0]["headers"]).get(b"connection")


def chunks(count: int, size: int = 1000, last: bool = True) -> list[dict]:
    return [
        {"type": "http.request", "body": b" " * size, "more_body": not last or i < count - 1}
        for i in range(count)
    ]


def test_a_chunked_body_stopped_at_the_limit_is_not_read_on():
    # the reader answers 413 once it has counted more than MAX_BYTES; the rest of a body
    # already over the limit is never worth reading: the answer closes the connection at once
    app = BodyReadMiddleware(refuse, MAX_BYTES, timeout_seconds=5, retry_after=1)
    assert run(app, chunks(20, last=False)) == (MAX_BYTES + 1000, 413, b"close")


def test_a_chunked_body_of_an_early_answer_is_read_to_its_end_and_the_connection_kept():
    assert run(refuse, chunks(3)) == (3000, 401, None)


def test_a_client_that_hangs_up_before_its_body_is_in_gets_connection_close():
    assert run(refuse, [*chunks(1, last=False), {"type": "http.disconnect"}]) == (
        1000,
        401,
        b"close",
    )


def test_a_chunked_body_over_the_limit_after_an_early_answer_closes_the_connection():
    assert run(refuse, chunks(20, last=False)) == (MAX_BYTES + 1000, 401, b"close")
