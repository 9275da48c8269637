"""kefu's HTTP protocol (kefu/serving/server/protocol.py) against a real `kefu serve`: its own
answers to bytes that are not HTTP and to requests over the connection limit, idle kept-alive
connections closed to make room, and a hang-up under pipelining reaching the request in flight.
"""

import contextlib
import json
import math
import time

import pytest
from support.serving import Server, connect, copy_bundle, metric, read_response

from kefu.serving.server.protocol import READ_AHEAD_REQUESTS

LIMIT = 8  # KEFU_LIMIT_CONCURRENCY
SLOW_MESSAGES = 128  # messages of a SLOW request (below)
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    work = tmp_path_factory.mktemp("protocol")
    running = Server(
        copy_bundle(tiny_bundle, work / "bundle"),
        work / "server.log",
        env={
            "KEFU_LIMIT_CONCURRENCY": str(LIMIT),
            "KEFU_KEEP_ALIVE_SECONDS": "30",  # idle connections stay unless closed for room
            "KEFU_BODY_TIMEOUT_SECONDS": "2",
            "KEFU_RETRY_AFTER_SECONDS": "2",
            "KEFU_LOG_TEXT": "masked",
            # room for `model_kept_busy`'s requests of SLOW_MESSAGES messages each
            "KEFU_MAX_BATCH": str(SLOW_MESSAGES),
            "KEFU_QUEUE_SIZE": str(SLOW_MESSAGES * LIMIT),
        },
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def post_head(length: int) -> bytes:
    return (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


def wait_until(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def protocol_errors(server, status: str, code: str) -> float:
    return metric(server.url, "kefu_protocol_errors_total", code=code, status=status)


def assert_kefu_error(headers: dict[str, str], body: bytes, code: str, message: str) -> None:
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["connection"] == "close"
    assert "date" in headers  # uvicorn's default headers, as on every answer
    assert json.loads(body) == {"error": {"code": code, "message": message, "field": None}}


def test_bytes_that_are_not_http_get_a_json_400_with_nosniff_and_are_counted(server):
    before = protocol_errors(server, "400", "invalid_http")
    with connect(server.port) as sock:
        sock.sendall(b"HELLO \x01\x02 there\r\n\r\n")
        status, headers, body = read_response(sock)
        assert status == 400
        assert_kefu_error(
            headers,
            body,
            "invalid_http",
            "the request is not valid HTTP/1.1 (request line, headers or chunked body framing "
            "could not be parsed); the connection is closed",
        )
        assert sock.recv(1) == b""
    assert protocol_errors(server, "400", "invalid_http") == before + 1


def test_a_request_over_the_limit_gets_a_json_503_with_retry_after_and_is_counted(server):
    before = protocol_errors(server, "503", "concurrency_limit")
    body = json.dumps({"text": "我的快递三天没动了"}).encode()
    # uvicorn counts the asking connection too: LIMIT - 1 others fill the worker
    busy = [connect(server.port) for _ in range(LIMIT - 1)]  # requests whose bodies are late
    try:
        for sock in busy:
            sock.sendall(post_head(len(body)) + body[:5])
        time.sleep(0.2)
        with connect(server.port) as sock:
            sock.sendall(HEALTHZ)
            status, headers, answer = read_response(sock)
            assert (status, headers["retry-after"]) == (503, "2")
            assert_kefu_error(
                headers,
                answer,
                "concurrency_limit",
                f"this server process has {LIMIT} connections or requests open, its limit "
                "(KEFU_LIMIT_CONCURRENCY); retry after 2 s",
            )
            assert sock.recv(1) == b""
        # connections with a request in progress are not closed to make room: each still
        # gets its answer, the body time-out
        for sock in busy:
            status, _, answer = read_response(sock)
            assert (status, json.loads(answer)["error"]["code"]) == (408, "body_timeout")
    finally:
        for sock in busy:
            sock.close()
    assert protocol_errors(server, "503", "concurrency_limit") == before + 1


WEBSOCKET_HANDSHAKE = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
H2C_UPGRADE = (  # what `curl --http2` sends on http://
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
)


@pytest.mark.parametrize("upgrade", [WEBSOCKET_HANDSHAKE, H2C_UPGRADE], ids=["websocket", "h2c"])
def test_a_request_asking_to_switch_protocols_is_served_as_http(server, upgrade):
    # kefu serves no WebSocket, whatever library is installed: no bare 403 from uvicorn
    with connect(server.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + upgrade + b"\r\n")
        status, headers, body = read_response(sock)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["x-content-type-options"] == "nosniff"
        sock.sendall(HEALTHZ)  # the connection serves on
        assert read_response(sock)[0] == 200
    assert "Unsupported upgrade request" not in server.log()


@pytest.mark.parametrize("upgrade", [WEBSOCKET_HANDSHAKE, H2C_UPGRADE], ids=["websocket", "h2c"])
def test_a_request_with_a_body_asking_to_switch_protocols_is_told_why_it_is_refused(
    server, upgrade
):
    # the parser hands the bytes after such a head to the new protocol: the body would be lost
    before = protocol_errors(server, "400", "invalid_http")
    body = json.dumps({"text": "在吗"}).encode()
    with connect(server.port) as sock:
        sock.sendall(post_head(len(body))[:-2] + upgrade + b"\r\n" + body)
        status, headers, answer = read_response(sock)
        assert status == 400
        assert_kefu_error(
            headers,
            answer,
            "invalid_http",
            "the request asks to switch protocols (Upgrade header) and carries a body, which "
            "is then not read as HTTP/1.1; kefu speaks HTTP/1.1 only: send the request without "
            "Upgrade (curl: --http1.1, not --http2, on http://); the connection is closed",
        )
        assert sock.recv(1) == b""
    assert protocol_errors(server, "400", "invalid_http") == before + 1


def test_idle_kept_alive_connections_are_closed_longest_idle_first_to_make_room(server):
    before = metric(server.url, "kefu_idle_connections_closed_total")
    idle = []
    try:
        for _ in range(LIMIT - 1):  # clients answered and kept alive fill the worker
            sock = connect(server.port)
            sock.sendall(HEALTHZ)
            assert read_response(sock)[0] == 200
            idle.append(sock)
            time.sleep(0.02)
        with connect(server.port) as newcomer:
            newcomer.sendall(HEALTHZ)
            status, _, answer = read_response(newcomer)
            assert (status, json.loads(answer)) == (200, {"status": "ok"})
        # the newcomer's request fits once the connection idle longest was closed
        assert idle[0].recv(1) == b""
        for sock in idle[1:]:  # the others still serve
            sock.sendall(HEALTHZ)
            assert read_response(sock)[0] == 200
    finally:
        for sock in idle:
            sock.close()
    assert metric(server.url, "kefu_idle_connections_closed_total") == before + 1


def classify_count(server, status: str) -> float:
    return metric(
        server.url, "kefu_requests_total", method="POST", route="/v1/classify", status=status
    )


# a request the server takes a few tenths of a second on: long texts (their normalising and
# entity search is most of it; the model reads 64 tokens of each), sent as UTF-8 (690 KB, under
# KEFU_MAX_BODY_BYTES)
SLOW = json.dumps(
    {
        "messages": [
            {"id": f"m{i}", "text": "我的快递三天没动了" * 200} for i in range(SLOW_MESSAGES)
        ]
    },
    ensure_ascii=False,
).encode()
SMALL = json.dumps({"text": "在吗"}).encode()
# a body past uvicorn's 64 KB flow-control mark, within KEFU_MAX_BODY_BYTES
LARGE = json.dumps({"messages": [{"text": "快" * 10_000} for _ in range(5)]}).encode()


@pytest.fixture(scope="module")
def busy_requests(server) -> int:
    """How many SLOW requests keep the model busy for a second or more on this machine (a fast
    CPU takes a tenth of a second on one), within the connection limit: the test's own
    connection and a metrics scrape need room too."""
    with connect(server.port) as sock:
        started = time.monotonic()
        sock.sendall(post_head(len(SLOW)) + SLOW)
        assert read_response(sock)[0] == 200
        seconds = time.monotonic() - started
    return min(LIMIT - 3, max(2, math.ceil(1.2 / seconds)))


@contextlib.contextmanager
def model_kept_busy(server, requests: int):
    """`requests` slow requests from other connections, queued first (`busy_requests`): a
    request sent next waits for the model a second or more, so it is surely in flight when its
    client hangs up. Their answers (200) are read on the way out."""
    others = [connect(server.port) for _ in range(requests)]
    try:
        for sock in others:
            sock.sendall(post_head(len(SLOW)) + SLOW)
        time.sleep(0.2)
        yield
        for sock in others:
            assert read_response(sock)[0] == 200
    finally:
        for sock in others:
            sock.close()


@pytest.mark.parametrize(
    ("queued", "late"),
    [(SMALL, False), (LARGE, False), (SMALL, True)],
    ids=["small-queued-at-once", "large-queued-at-once", "small-queued-while-waiting"],
)
def test_a_hang_up_with_pipelined_requests_is_a_499_for_the_request_in_flight(
    server, busy_requests, queued, late
):
    # The hang-up is seen while the request in flight waits for the model: uvicorn stops
    # reading when a request is queued behind it, and kefu reads on, so a body past 64 KB, or
    # a request sent once the one in flight waits, does not hide it.
    answered, hung_up = classify_count(server, "200"), classify_count(server, "499")
    pipelined = post_head(len(queued)) + queued
    with model_kept_busy(server, busy_requests):
        with connect(server.port) as sock:
            sock.sendall(post_head(len(SLOW)) + SLOW + (b"" if late else pipelined))
            if late:
                time.sleep(0.3)  # the request in flight now waits for the model
                sock.sendall(pipelined)
            time.sleep(0.1)
        wait_until(lambda: classify_count(server, "499") == hung_up + 1, what="a 499")
    time.sleep(1.0)  # the request in flight was cut off: it is not also answered later
    assert classify_count(server, "200") == answered + busy_requests  # model_kept_busy's
    assert classify_count(server, "499") == hung_up + 1  # the queued one never ran


def send_what_is_read(sock, data: bytes, seconds: float) -> None:
    """Send `data`, or what of it the server reads within `seconds`."""
    sock.setblocking(False)
    deadline = time.monotonic() + seconds
    while data and time.monotonic() < deadline:
        try:
            data = data[sock.send(data) :]
        except BlockingIOError:
            time.sleep(0.01)


@pytest.mark.parametrize(
    ("queued", "late"),
    [
        (post_head(3_000_000) + b" " * 1_500_000, False),
        ((post_head(len(SMALL)) + SMALL) * (READ_AHEAD_REQUESTS + 4), True),
    ],
    ids=["bodies-over-KEFU_MAX_BODY_BYTES", "more-than-READ_AHEAD_REQUESTS"],
)
def test_past_the_read_ahead_budget_a_hang_up_is_seen_once_the_request_in_flight_is_answered(
    server, busy_requests, queued, late
):
    # Queued requests are read ahead up to KEFU_MAX_BODY_BYTES of bodies (1 MB here) and
    # READ_AHEAD_REQUESTS requests: past that a client cannot make a connection hold more, so
    # reading stops, and the hang-up behind the unread bytes waits for the answer in flight.
    answered = classify_count(server, "200")
    with model_kept_busy(server, busy_requests):
        with connect(server.port) as sock:
            send_what_is_read(sock, post_head(len(SLOW)) + SLOW + (b"" if late else queued), 0.5)
            if late:
                time.sleep(0.3)  # the request in flight now waits for the model
                send_what_is_read(sock, queued, 0.5)
        wait_until(
            lambda: classify_count(server, "200") >= answered + busy_requests + 1,
            what="the answers",
        )


def test_the_access_log_keeps_a_masked_marker_whole_at_the_cut(server):
    text = "快" * 195 + "13812345678" + "快" * 50
    body = json.dumps({"messages": [{"id": "cut-1", "text": text}]}).encode()
    with connect(server.port) as sock:
        sock.sendall(post_head(len(body)) + body)
        assert read_response(sock)[0] == 200

    def logged() -> list[dict]:
        records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        return [
            entry
            for record in records
            for entry in record.get("messages", [])
            if entry.get("id") == "cut-1"
        ]

    wait_until(logged, what="the access-log line")
    assert logged()[0]["text"] == "快" * 195 + "<phone>...(+50 chars)"


def read_until_closed(sock) -> list[tuple[int, bytes]]:
    """(status, body) of every response the server writes before it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        answers.append((int(head.split()[1]), rest[:length]))
        data = rest[length:]
    return answers


BROKEN_CHUNKS = (  # a chunked body whose framing breaks after its first chunk
    b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'X-Request-ID: broken-chunks\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"tex\r\nzz\r\n'
)


@pytest.mark.parametrize(
    "bad",
    [b"GARBAGE \x01\r\n\r\n", BROKEN_CHUNKS],
    ids=["not-http-after-requests", "broken-chunks-after-requests"],
)
@pytest.mark.parametrize("before", [1, 2], ids=["one-request", "two-pipelined"])
def test_requests_read_whole_before_bad_bytes_are_answered_first_then_the_400(server, bad, before):
    # HTTP/1.1 answers in request order: a 400 written at once would be read as the answer of
    # the request still being served, which was then cut off and counted as a 499
    answered, hung_up = classify_count(server, "200"), classify_count(server, "499")
    invalid = protocol_errors(server, "400", "invalid_http")
    with connect(server.port) as sock:
        sock.sendall((post_head(len(SMALL)) + SMALL) * before + bad)
        answers = read_until_closed(sock)
    assert [status for status, _ in answers] == [200] * before + [400]
    assert json.loads(answers[-1][1])["error"]["code"] == "invalid_http"
    assert classify_count(server, "200") == answered + before
    assert classify_count(server, "499") == hung_up
    assert protocol_errors(server, "400", "invalid_http") == invalid + 1


def test_a_request_whose_chunked_body_breaks_is_answered_400_not_counted_as_a_hang_up(server):
    # its head reached the app, which must not count or log it too: one answer, one count
    hung_up = classify_count(server, "499")
    invalid = protocol_errors(server, "400", "invalid_http")
    with connect(server.port) as sock:
        sock.sendall(BROKEN_CHUNKS)
        assert [status for status, _ in read_until_closed(sock)] == [400]
    with connect(server.port) as sock:  # a request logged after it, to wait for
        sock.sendall(HEALTHZ[:-2] + b"X-Request-ID: after-broken-chunks\r\n\r\n")
        assert read_response(sock)[0] == 200

    def logged_ids() -> list[str]:
        lines = server.log().splitlines()
        return [json.loads(line).get("request_id") for line in lines if line.startswith("{")]

    wait_until(lambda: "after-broken-chunks" in logged_ids(), what="the access-log line")
    assert "broken-chunks" not in logged_ids()
    assert classify_count(server, "499") == hung_up
    assert protocol_errors(server, "400", "invalid_http") == invalid + 1
