"""The request-head time limit (kefu/serving/server/head_timeout.py) against a real `kefu serve`:
silent and slowloris connections are closed, kept-alive clients and slow bodies keep their
behaviour, and the connection slots the slow ones held are freed."""

import json
import select
import socket
import time

import httpx
import pytest
from support.serving import Server, connect, copy_bundle, metric, read_response

HEAD_TIMEOUT = 0.5
LIMIT = 8  # KEFU_LIMIT_CONCURRENCY: connections open at once per worker
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
TIMED_OUT = (
    "the request head did not arrive within 0.5 seconds (KEFU_HEAD_TIMEOUT_SECONDS); "
    "send the whole request head at once"
)


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    work = tmp_path_factory.mktemp("head_timeout")
    running = Server(
        copy_bundle(tiny_bundle, work / "bundle"),
        work / "server.log",
        env={
            "KEFU_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
            "KEFU_BODY_TIMEOUT_SECONDS": "1",
            "KEFU_KEEP_ALIVE_SECONDS": "5",
            "KEFU_LIMIT_CONCURRENCY": str(LIMIT),
        },
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def seconds_until_closed(sock: socket.socket) -> float:
    """Time until the server closes `sock`, which must not answer anything first."""
    started = time.monotonic()
    assert sock.recv(65536) == b""
    return time.monotonic() - started


def trickle(sock: socket.socket, data: bytes, every: float = 0.2) -> tuple[int, float]:
    """Send `data` one byte every `every` seconds until the server answers or closes; returns
    the bytes sent and the seconds from the first byte to the answer."""
    started = time.monotonic()
    for sent in range(1, len(data) + 1):
        sock.sendall(data[sent - 1 : sent])
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            return sent, time.monotonic() - started
    raise AssertionError("the whole head went through without an answer")


def assert_head_timeout_answer(sock: socket.socket) -> None:
    status, headers, body = read_response(sock)
    assert (status, headers["connection"]) == (408, "close")
    assert "date" in headers  # written by hand, with the headers uvicorn gives every answer
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body) == {
        "error": {"code": "head_timeout", "message": TIMED_OUT, "field": None}
    }
    assert sock.recv(1) == b""  # and the connection is closed


def test_a_connection_that_sends_nothing_is_closed_at_the_head_timeout(server):
    with connect(server.port) as sock:
        assert HEAD_TIMEOUT - 0.1 <= seconds_until_closed(sock) < HEAD_TIMEOUT + 2


def test_a_head_trickled_a_byte_at_a_time_gets_408_at_the_head_timeout(server):
    # each byte cancels uvicorn's keep-alive timer; the head clock runs from the connection
    with connect(server.port) as sock:
        sent, seconds = trickle(sock, HEALTHZ)
        assert sent < len(HEALTHZ)
        assert HEAD_TIMEOUT - 0.25 <= seconds < HEAD_TIMEOUT + 2
        assert_head_timeout_answer(sock)


def test_a_kept_alive_connection_may_idle_past_the_head_timeout_and_still_be_served(server):
    # Between a response and the next request's first byte the keep-alive timeout (5 s here)
    # governs; the head clock starts at that byte.
    with connect(server.port) as sock:
        sock.sendall(HEALTHZ)
        assert read_response(sock)[0] == 200
        sock.sendall(HEALTHZ)  # right after
        assert read_response(sock)[0] == 200
        time.sleep(HEAD_TIMEOUT + 0.5)
        sock.sendall(HEALTHZ)
        assert read_response(sock)[0] == 200


def test_a_partial_head_on_a_kept_alive_connection_is_timed_from_its_first_byte(server):
    with connect(server.port) as sock:
        sock.sendall(HEALTHZ)
        assert read_response(sock)[0] == 200
        time.sleep(HEAD_TIMEOUT + 0.2)
        sent, seconds = trickle(sock, HEALTHZ)
        assert sent > 1 and HEAD_TIMEOUT - 0.25 <= seconds < HEAD_TIMEOUT + 2
        assert_head_timeout_answer(sock)


def test_a_head_begun_while_the_previous_request_was_served_is_timed_from_the_response(server):
    # no byte arrives after the response to start the clock: it starts at the response, and the
    # keep-alive timeout (5 s here) does not govern a connection with part of a head in
    with connect(server.port) as sock:
        sock.sendall(HEALTHZ + b"GET /hea")
        assert read_response(sock)[0] == 200
        started = time.monotonic()
        assert_head_timeout_answer(sock)
        assert time.monotonic() - started < HEAD_TIMEOUT + 2


def test_a_head_in_time_then_a_slow_body_still_gets_the_body_timeout(server):
    body = json.dumps({"text": "我的快递三天没动了"}).encode()
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
        )
        started = time.monotonic()
        status, headers, answer = read_response(sock)
        assert 1.0 - 0.1 <= time.monotonic() - started < 3  # KEFU_BODY_TIMEOUT_SECONDS
        assert (status, headers["connection"]) == (408, "close")
        assert json.loads(answer)["error"]["code"] == "body_timeout"


def test_silent_connections_cannot_hold_the_connection_slots(server):
    silent = [connect(server.port) for _ in range(LIMIT)]
    try:
        time.sleep(0.1)  # accepted by the server
        # every slot is held: a request is refused at once at KEFU_LIMIT_CONCURRENCY
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 503
        for sock in silent:  # until the head timeout closes them
            assert seconds_until_closed(sock) < HEAD_TIMEOUT + 2
        assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
    finally:
        for sock in silent:
            sock.close()


def test_head_timeouts_are_counted_and_logged_once_a_minute_at_most(server):
    def counts() -> tuple[float, float]:
        return tuple(
            metric(server.url, "kefu_head_timeouts_total", received=received)
            for received in ("nothing", "partial")
        )

    before = counts()
    with connect(server.port) as silent, connect(server.port) as slow:
        slow.sendall(b"GET /hea")
        assert seconds_until_closed(silent) < HEAD_TIMEOUT + 2
        assert read_response(slow)[0] == 408
    after = counts()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    lines = [record for record in records if "head did not arrive" in record["msg"]]
    # one line for the module's first time-out, with its count; the others wait a minute
    assert len(lines) == 1
    assert lines[0]["level"] == "info" and lines[0]["head_timeout_seconds"] == HEAD_TIMEOUT
    assert lines[0]["closed_silent"] + lines[0]["closed_partial_head"] >= 1


def test_two_workers_time_out_heads_too(tiny_bundle, tmp_path):
    # uvicorn rebuilds the protocol in each worker process from its pickled options
    server = Server(
        tiny_bundle,
        tmp_path / "workers.log",
        "--workers",
        "2",
        env={"KEFU_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT)},
    )
    try:
        server.wait_ready()
        silent = [connect(server.port) for _ in range(4)]
        for sock in silent:
            assert seconds_until_closed(sock) < HEAD_TIMEOUT + 2
            sock.close()
        with connect(server.port) as sock:
            trickle(sock, HEALTHZ)
            assert_head_timeout_answer(sock)
        assert metric(server.url, "kefu_head_timeouts_total", received="nothing") == 4
        assert metric(server.url, "kefu_head_timeouts_total", received="partial") == 1
    finally:
        assert server.stop() == 0
