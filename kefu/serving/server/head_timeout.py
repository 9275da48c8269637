"""A time limit on the request head: uvicorn's HTTP protocol with `KEFU_HEAD_TIMEOUT_SECONDS`.

Why: uvicorn has no timeout for a request head that never completes. A client that opens a
connection and sends nothing, or trickles a partial head a byte at a time (slowloris), holds the
connection for ever: its keep-alive timer only runs after a response, and the first byte of the
next request cancels it. Each worker keeps at most `KEFU_LIMIT_CONCURRENCY` connections and
answers 503 beyond it, so a few hundred such sockets would lock every real client out. Mature
servers bound the head (nginx `client_header_timeout`, Go's `ReadHeaderTimeout`); this does too.

The rule: a request head must arrive whole within the head timeout of the connection opening
or, on a kept-alive connection, of the first byte after the previous response. Between a
response and that byte the keep-alive timeout (`KEFU_KEEP_ALIVE_SECONDS`) governs, as before, so
a kept-alive client may idle for the keep-alive time and then take the head time to send its
head (as in Go, where `IdleTimeout` runs until the next request's first byte, then
`ReadHeaderTimeout`; and in nginx). Starting the head clock at the response instead would close
idle kept-alive connections after the head timeout, or cut off a request sent late in the idle
time. A head that began while the previous request was being served (pipelined) is timed from
that response. Once the head is in, `KEFU_BODY_TIMEOUT_SECONDS` governs the body (middleware).

When the time is up with part of a head received, the client gets 408 `head_timeout` (kefu's
JSON error body, `Connection: close`; nothing else is being written on the connection then, so
the answer is whole) and the connection is closed; a connection that sent nothing is closed
without a word (nginx and Go close silently in both cases: here a client that sent part of a
request is told why, and a browser's pre-opened, unused socket is not sent a 408 it never asked
for). Both count in `kefu_head_timeouts_total{received="nothing"|"partial"}` (the app hands its
counter over through the lifespan state, `STATE_KEY`) and in an info log line at most once a
minute (`counted_log.py`), not per connection: a flood of slow clients must not become a flood
of log lines.

kefu runs uvicorn's httptools protocol (httptools is a dependency; uvicorn's "auto" picks it
too), so that is the class extended; `protocol.py` extends it further and is what `kefu serve`
passes to uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from kefu.errors import RequestTimeout
from kefu.serving.server.counted_log import CountedLog
from kefu.serving.server.error_responses import kefu_error_response

log = logging.getLogger("kefu.runtime")

# Lifespan-state key of the app's `(received: str) -> None` counter of head time-outs.
STATE_KEY = "kefu_head_timeouts"


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is late (above)."""

    def __init__(self, *args: Any, head_timeout_seconds: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.head_timeout_seconds = head_timeout_seconds
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True  # no request of this connection is being read or answered
        self._head_begun = False  # part of a request head has arrived (not just blank lines)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # a whole head stops the clock in on_headers_complete
        if self._awaiting_head and self._head_timer is None and not self.transport.is_closing():
            self._start_head_clock()  # the first byte after a response on a kept-alive connection

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self._awaiting_head = self._head_begun = False
        self._stop_head_clock()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request's head is already in: it starts now
        super().on_response_complete()
        if pipelined or self.transport.is_closing():
            return
        self._awaiting_head = True
        if self._head_begun:  # part of the next head came while this request was served
            self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _start_head_clock(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        received = "partial" if self._head_begun else "nothing"
        if self._head_begun:
            self.transport.write(self._timeout_response())
        self.transport.close()
        count = self.app_state.get(STATE_KEY)
        if count is not None:
            count(received)
        kind = "closed_partial_head" if self._head_begun else "closed_silent"
        _LOG.add(kind, head_timeout_seconds=self.head_timeout_seconds)

    def _timeout_response(self) -> bytes:
        error = RequestTimeout(
            f"the request head did not arrive within {self.head_timeout_seconds:g} seconds "
            "(KEFU_HEAD_TIMEOUT_SECONDS); send the whole request head at once",
            code="head_timeout",
        )
        # the answer a body time-out gets (Connection: close included), written by hand: no
        # ASGI cycle exists for a request whose head never arrived
        response = kefu_error_response(error, retry_after_seconds=0)
        return response_bytes(response, self.server_state.default_headers)


def response_bytes(response: Response, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole kefu error response as bytes for the transport, for answers the protocol writes
    itself: uvicorn's default headers first (Date), then the response's own, then nosniff."""
    head = [STATUS_LINE[response.status_code]]
    for name, value in [
        *default_headers,
        *response.raw_headers,
        (b"x-content-type-options", b"nosniff"),
    ]:
        head += [name, b": ", value, b"\r\n"]
    return b"".join([*head, b"\r\n", response.body])


# closed_silent: the connection sent nothing; closed_partial_head: part of a head, answered 408
_LOG = CountedLog(
    log,
    logging.INFO,
    "closed connections whose request head did not arrive in time (counted since the last "
    "such line; at most one a minute)",
    ("closed_silent", "closed_partial_head"),
)
