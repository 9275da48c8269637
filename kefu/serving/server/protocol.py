"""kefu's HTTP protocol for uvicorn: the head time limit and the answers uvicorn writes alone.

`kefu serve` passes `http_protocol(...)` as uvicorn's `http=` (a picklable `functools.partial`,
rebuilt in each worker under `--workers N`). On top of `head_timeout.py` it changes what
uvicorn's httptools protocol does before kefu's app sees a request:

- Bytes that are not HTTP get kefu's JSON error (400 `invalid_http`) instead of uvicorn's plain
  text, and a request over `KEFU_LIMIT_CONCURRENCY` kefu's 503 `concurrency_limit` with
  `Retry-After`; both carry `X-Content-Type-Options: nosniff` and `Connection: close`, like
  every answer kefu writes, and are counted in `kefu_protocol_errors_total{status,code}`
  (through the lifespan state, `ERRORS_KEY`). Each kind is logged as a warning at most once a
  minute with the count since the line before (`counted_log.py`), as head time-outs are,
  in place of uvicorn's line per answer ("Invalid HTTP request received.", "Exceeded
  concurrency limit."): a flood of bad clients must not flood the log. uvicorn decides the 503 in `on_headers_complete`
  from the instance's `limit_concurrency` and answers with its own ASGI app; here the instance
  limit is switched off and the same check (connections or requests open, `>=` the limit) runs
  first, handing uvicorn kefu's answer as the app of that one request. These are uvicorn's
  attributes and callbacks (pinned below 0.56), not copies of its code: the server tests run
  the real protocol, so a change there fails them.
- Idle kept-alive connections are closed to make room. uvicorn counts every open connection
  against the limit, and a kept-alive client holds its connection for the keep-alive time
  after its last answer, so a few hundred idle clients made new work get 503 while nothing was
  being served. When a request would be refused for the number of connections, the connections
  idle longest since their last answer (nothing of a next request received) are closed first,
  as nginx reuses its keep-alive connections when it runs out (`worker_connections are not
  enough, reusing connections`); counted in `kefu_idle_connections_closed_total`. A connection
  that never sent a request is not idle in this sense: the head time-out bounds it. A client
  whose next request crosses the close on the wire sees the connection closed with no answer,
  the same race as the keep-alive time-out's.
- A request that asks to switch protocols (`Upgrade`: WebSocket, or h2c as `curl --http2`
  sends on http://) is served as HTTP/1.1, the header ignored (`kefu serve` runs uvicorn with
  no WebSocket protocol, whatever is installed: uvicorn would otherwise answer a WebSocket
  handshake with its bare 403). The parser hands what follows such a head to the new
  protocol, so one with a body gets 400 `invalid_http` saying why, not an answer about an
  empty body; uvicorn's warning line per such request is not written.
- A hang-up reaches the request being served. With pipelined requests uvicorn marked only the
  last request parsed (queued, never to run) as disconnected, so the one in flight ran to the
  end, its messages inferred for nobody, and was counted as answered; now every request of the
  connection not yet answered sees the disconnect, and the one in flight is counted as 499.
  A hang-up is only seen by reading up to it, and uvicorn stops reading a connection when a
  request is queued behind the one in flight (and when a body passes 64 KB): a pipelined
  request that arrived once the one in flight was waiting for the model, or a large one, left
  the hang-up unseen until the answer was written. The requests queued behind are now read on
  while they fit a budget: at most `READ_AHEAD_REQUESTS` of them, with bodies of at most
  `KEFU_MAX_BODY_BYTES` together (what one request may hold in memory anyway). Past it reading
  stops as before, so a client cannot queue without bound, and its hang-up is seen once the
  request in flight is answered.
- A request head is read up to `MAX_HEAD_BYTES`. httptools sets no bound (uvicorn's h11
  protocol sets 16 KB), and the head time limit alone let one connection fill the worker's
  memory with a header line of hundreds of MB. A longer head gets kefu's 431 `head_too_large`
  and the connection is closed, counted and logged as the other answers here.
- Bad bytes after whole requests wait for their answers. uvicorn wrote its 400 the moment the
  parser failed and closed the connection, so a client that sent a request followed by bytes
  that are not HTTP (or pipelined several) read the 400 as the answer to its first request,
  whose real answer was cut off and counted as a 499. HTTP/1.1 answers in request order: the
  requests read whole are answered first, reading stopped, then the 400 (or 431) and the close. A
  request whose own chunked body breaks gets the 400 as its answer; its head had reached the
  app, which neither counts nor logs it (`ANSWERED_KEY` in its scope state), as for any other
  `invalid_http`: one answer, counted once.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from kefu.errors import HeadTooLarge, KefuError, Unavailable
from kefu.serving.server.counted_log import CountedLog
from kefu.serving.server.error_responses import kefu_error_response
from kefu.serving.server.head_timeout import HeadTimeoutProtocol, response_bytes

log = logging.getLogger("kefu.runtime")

# Lifespan-state keys of the app's counters: `(status: int, code: str) -> None` of the answers
# the protocol writes itself, and `() -> None` of idle connections closed to make room.
ERRORS_KEY = "kefu_protocol_errors"
IDLE_CLOSED_KEY = "kefu_idle_connections_closed"
# Scope-state key set on a request the protocol answered itself (400 `invalid_http` for its
# broken body): the app's middleware then neither counts nor logs it.
ANSWERED_KEY = "kefu_answered_by_protocol"
# Requests read ahead behind the one in flight (see above); a pipelining client keeps a few
# in flight, and each queued request holds its head and body in memory until it runs.
READ_AHEAD_REQUESTS = 16
# The longest request head read (request line and header fields), in bytes: nginx reads 32 KB
# (large_client_header_buffers 4 8k), Go 1 MB (MaxHeaderBytes). A head that has not ended is
# refused once the reads holding only its bytes pass it (at most one read, 256 KB, more is
# held); one that ended is measured whole.
MAX_HEAD_BYTES = 64 * 1024
# uvicorn's warning before it calls `send_400_response`, left out of the log (`_UvicornLog`)
UVICORN_INVALID_HTTP_LINE = "Invalid HTTP request received."


def http_protocol(
    head_timeout_seconds: float, retry_after_seconds: int, max_body_bytes: int
) -> Callable[..., KefuHttpProtocol]:
    """uvicorn's `http=` option: the protocol class with its settings bound (picklable)."""
    return functools.partial(
        KefuHttpProtocol,
        head_timeout_seconds=head_timeout_seconds,
        retry_after_seconds=retry_after_seconds,
        read_ahead_bytes=max_body_bytes,
    )


class KefuHttpProtocol(HeadTimeoutProtocol):
    """uvicorn's httptools protocol with kefu's head time limit, early answers, room for new
    work at the connection limit, requests asking to switch protocols served or refused, and
    hang-ups seen by the request in flight (above)."""

    def __init__(self, *args: Any, retry_after_seconds: int, read_ahead_bytes: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.logger = _UVICORN_LOG  # type: ignore[assignment]
        self.retry_after_seconds = retry_after_seconds
        self.read_ahead_bytes = read_ahead_bytes  # body bytes of queued requests, together
        self.connection_limit: int | None = self.limit_concurrency
        self.limit_concurrency = None  # uvicorn's own check (its plain-text 503) stays off
        self.idle_since: float | None = None  # loop time of the last answer, while idle
        self._unanswered: list[RequestResponseCycle] = []  # in flight, then pipelined
        self._closing_answer: KefuError | None = None  # written once the answers owed are
        self._heads_read = 0  # request heads read whole on this connection
        self._head_bytes = 0  # bytes of the head being read, counted as `data_received` says

    def data_received(self, data: bytes) -> None:
        self.idle_since = None
        if self._closing_answer is not None:
            return  # the connection closes after the answers owed: nothing more is read
        within_head = self._head_begun  # these bytes continue a head begun before them
        heads = self._heads_read
        super().data_received(data)
        if within_head and self._head_begun and heads == self._heads_read:
            self._head_bytes += len(data)  # all of them head: it did not end in them
            if self._head_bytes > MAX_HEAD_BYTES and self._closing_answer is None:
                self._answer_last(_head_too_large())

    def on_headers_complete(self) -> None:
        self._heads_read += 1
        self._head_bytes = 0
        refusal = self._refusal()
        if refusal is None:
            super().on_headers_complete()
        else:  # uvicorn runs the refusal as the app of this one request
            app, self.app = self.app, refusal
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        cycle = self.cycle
        if cycle is not None and cycle not in self._unanswered:
            self._unanswered = [
                *(known for known in self._unanswered if not known.response_complete),
                cycle,
            ]
        self._read_ahead()

    def _refusal(self) -> Callable[..., Any] | None:
        """The answer of a request refused from its head here, or None to let the app answer."""
        limit = self.connection_limit
        if limit is not None and len(self.connections) >= limit and len(self.tasks) < limit:
            self._close_idle_connections(limit)  # room enough, unless requests fill the limit
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            _REFUSED.add("refused", concurrency_limit=limit)
            return self._refuse
        if self.parser.should_upgrade() and _declares_body(self.headers):
            return self._closing_app(
                KefuError(
                    "the request asks to switch protocols (Upgrade header) and carries a body, "
                    "which is then not read as HTTP/1.1; kefu speaks HTTP/1.1 only: send the "
                    "request without Upgrade (curl: --http1.1, not --http2, on http://); the "
                    "connection is closed",
                    code="invalid_http",
                )
            )
        # a head read in one go was not counted by data_received: measured whole here
        if len(self.url) + sum(len(name) + len(value) for name, value in self.headers) > (
            MAX_HEAD_BYTES
        ):
            return self._closing_app(_head_too_large())
        return None

    def _unsupported_upgrade_warning(self) -> None:
        """uvicorn warns of every `Upgrade` it does not do (and advises installing a WebSocket
        library); kefu serves HTTP/1.1 alone, so a request's Upgrade is ignored, not a warning,
        or refused with its body (`_refuse_upgrade`), counted as other bad HTTP."""

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._read_ahead()

    def _read_ahead(self) -> None:
        """Read on behind the request in flight while the queued requests fit the budget, so a
        hang-up is seen at once (uvicorn paused reading for the queued head or body)."""
        if not self.pipeline or self.transport.is_closing():
            return  # nothing queued: uvicorn's own flow control holds
        if len(self.pipeline) > READ_AHEAD_REQUESTS:
            return
        if sum(len(cycle.body) for cycle, _ in self.pipeline) > self.read_ahead_bytes:
            return
        self.flow.resume_reading()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if self._closing_answer is not None and not self._answers_owed():
            self._write_closing_answer()
            return
        if not (pipelined or self.transport.is_closing() or self._head_begun):
            self.idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle_since = None
        for cycle in self._unanswered:  # uvicorn tells only the last one parsed (`self.cycle`)
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._unanswered = []
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's call when its parser rejects bytes: kefu's JSON 400, after the answers of
        the requests read whole before them (a request whose body broke is answered by it)."""
        if self._closing_answer is not None:
            return  # the parser fails again on what is read while the answers are owed
        broken = self.cycle
        if broken is not None and broken.more_body and not broken.response_complete:
            broken.scope["state"][ANSWERED_KEY] = True
            broken.disconnected = True  # its app, if running, stops reading and answers nobody
            broken.message_event.set()
            self.pipeline = deque(queued for queued in self.pipeline if queued[0] is not broken)
            self._unanswered = [cycle for cycle in self._unanswered if cycle is not broken]
        self._answer_last(
            KefuError(
                "the request is not valid HTTP/1.1 (request line, headers or chunked body "
                "framing could not be parsed); the connection is closed",
                code="invalid_http",
            )
        )

    def _answer_last(self, error: KefuError) -> None:
        """Answer `error` and close the connection, once the requests read whole before it are
        answered (HTTP/1.1 answers in request order); nothing more is read meanwhile."""
        self._closing_answer = error
        if self._answers_owed():
            self.flow.pause_reading()
        else:
            self._write_closing_answer()

    def _answers_owed(self) -> bool:
        return any(not cycle.response_complete for cycle in self._unanswered)

    def _write_closing_answer(self) -> None:
        error = self._closing_answer
        if error is None or self.transport.is_closing():
            return  # the last answer closed the connection: nothing follows it
        response = kefu_error_response(error, self.retry_after_seconds)
        response.headers["connection"] = "close"
        self.transport.write(response_bytes(response, self.server_state.default_headers))
        self.transport.close()
        self._count_error(error.http_status, error.code)
        _CLOSING_ANSWER_LOGS[error.code].add("answered")

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI app of a request over the limit: kefu's 503, the connection closed."""
        limit = self.connection_limit
        error = Unavailable(
            f"this server process has {limit} connections or requests open, its limit "
            f"(KEFU_LIMIT_CONCURRENCY); retry after {self.retry_after_seconds} s",
            code="concurrency_limit",
        )
        await self._closing_app(error)(scope, receive, send)

    def _closing_app(self, error: KefuError) -> Callable[..., Any]:
        """The ASGI app of one request refused from its head (a request with a body that asks
        to switch protocols: the parser hands what follows such a head to the new protocol, so
        the body would be lost; a head over MAX_HEAD_BYTES): kefu's error, counted, the
        connection closed after it."""

        async def refuse(scope: Any, receive: Any, send: Any) -> None:
            response = kefu_error_response(error, self.retry_after_seconds)
            response.headers["connection"] = "close"
            response.headers["x-content-type-options"] = "nosniff"
            self._count_error(error.http_status, error.code)
            if error.code in _CLOSING_ANSWER_LOGS:  # a concurrency refusal is logged as decided
                _CLOSING_ANSWER_LOGS[error.code].add("answered")
            await response(scope, receive, send)

        return refuse

    def _close_idle_connections(self, limit: int) -> None:
        """Close the connections idle longest until this one's request fits under `limit`."""
        idle = [
            connection
            for connection in self.connections
            if isinstance(connection, KefuHttpProtocol) and connection.idle_since is not None
        ]
        idle.sort(key=lambda connection: connection.idle_since or 0.0)
        for connection in idle[: len(self.connections) - limit + 1]:
            connection.close_idle()

    def close_idle(self) -> None:
        """Close this idle kept-alive connection now, and stop counting it at once (uvicorn
        drops it from its connections only when the loop reports it lost)."""
        self.idle_since = None
        self.transport.close()
        self.connections.discard(self)
        count = self.app_state.get(IDLE_CLOSED_KEY)
        if count is not None:
            count()

    def _count_error(self, status: int, code: str) -> None:
        count = self.app_state.get(ERRORS_KEY)
        if count is not None:
            count(status, code)


def _head_too_large() -> HeadTooLarge:
    return HeadTooLarge(
        f"the request head (request line and header fields) is over {MAX_HEAD_BYTES} bytes, "
        "the most the server reads; send shorter headers; the connection is closed"
    )


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request head announces a body: a Content-Length above 0, or chunked."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b"0 ")):
            return True
    return False


class _UvicornLog(logging.LoggerAdapter):
    """uvicorn's "uvicorn.error" logger as the protocol uses it, less its line per request
    that is not HTTP: those are counted and logged at most once a minute (`_INVALID_HTTP`)."""

    @property
    def level(self) -> int:  # uvicorn reads its logger's level (trace logging)
        return self.logger.level

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if msg != UVICORN_INVALID_HTTP_LINE:
            super().log(level, msg, *args, **kwargs)


_UVICORN_LOG = _UvicornLog(logging.getLogger("uvicorn.error"), {})
_INVALID_HTTP = CountedLog(
    log,
    logging.WARNING,
    "answered bytes that are not HTTP/1.1 with 400 invalid_http and closed the connections "
    "(counted since the last such line; at most one a minute)",
    ("answered",),
)
_HEAD_TOO_LARGE = CountedLog(
    log,
    logging.WARNING,
    "answered request heads over the size read with 431 head_too_large and closed the "
    "connections (counted since the last such line; at most one a minute)",
    ("answered",),
)
_CLOSING_ANSWER_LOGS = {"invalid_http": _INVALID_HTTP, "head_too_large": _HEAD_TOO_LARGE}
_REFUSED = CountedLog(
    log,
    logging.WARNING,
    "refused requests over KEFU_LIMIT_CONCURRENCY with 503 concurrency_limit (counted since "
    "the last such line; at most one a minute)",
    ("refused",),
)
