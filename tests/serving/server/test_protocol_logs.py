"""What the HTTP protocol logs of the answers it writes before the app sees a request: a burst
of bytes that are not HTTP, or of requests over the connection limit, is one line each with its
count (kefu/serving/server/counted_log.py), never a line per answer; the counters stay exact."""

import json
import time
from types import SimpleNamespace

import pytest
from support.serving import Server, connect, copy_bundle, metric, read_response

LIMIT = 4  # KEFU_LIMIT_CONCURRENCY
BURST = 12
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture()
def server(tiny_bundle, tmp_path):
    running = Server(
        copy_bundle(tiny_bundle, tmp_path / "bundle"),
        tmp_path / "server.log",
        env={"KEFU_LIMIT_CONCURRENCY": str(LIMIT), "KEFU_BODY_TIMEOUT_SECONDS": "5"},
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def log_records(server) -> list[dict]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def test_a_burst_of_bytes_that_are_not_http_is_one_warning_with_its_count(server):
    for _ in range(BURST):
        with connect(server.port) as sock:
            sock.sendall(b"HELLO \x01\x02 there\r\n\r\n")
            assert read_response(sock)[0] == 400
    assert metric(server.url, "kefu_protocol_errors_total", status="400", code="invalid_http") == (
        BURST
    )
    records = log_records(server)
    lines = [record for record in records if "invalid_http" in record["msg"]]
    # the first answer writes the line at once; the rest wait for the next line, a minute on
    assert [(line["level"], line["logger"], line["answered"]) for line in lines] == [
        ("warning", "kefu.runtime", 1)
    ]
    assert lines[0]["msg"] == (
        "answered bytes that are not HTTP/1.1 with 400 invalid_http and closed the connections "
        "(counted since the last such line; at most one a minute)"
    )
    assert not [record for record in records if "Invalid HTTP" in record["msg"]]  # uvicorn's


def test_what_was_counted_after_the_last_line_is_written_at_shutdown(server):
    for _ in range(BURST):
        with connect(server.port) as sock:
            sock.sendall(b"HELLO \x01\x02 there\r\n\r\n")
            assert read_response(sock)[0] == 400
    assert server.stop() == 0
    lines = [record for record in log_records(server) if "invalid_http" in record["msg"]]
    # the first at once, the other BURST - 1 in the line the worker writes as it shuts down
    assert [line["answered"] for line in lines] == [1, BURST - 1]


def test_a_burst_of_requests_over_the_limit_is_one_warning_with_its_count(server):
    body = b'{"text": "hi"}'
    head = (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    busy = [connect(server.port) for _ in range(LIMIT - 1)]  # requests whose bodies are late
    try:
        for sock in busy:
            sock.sendall(head + body[:3])
        time.sleep(0.2)
        for _ in range(BURST):
            with connect(server.port) as sock:
                sock.sendall(HEALTHZ)
                assert read_response(sock)[0] == 503
        for sock in busy:
            sock.sendall(body[3:])
            assert read_response(sock)[0] == 200
    finally:
        for sock in busy:
            sock.close()
    refused = metric(
        server.url, "kefu_protocol_errors_total", status="503", code="concurrency_limit"
    )
    assert refused == BURST
    records = log_records(server)
    lines = [record for record in records if "concurrency_limit" in record["msg"]]
    assert [(line["level"], line["refused"], line["concurrency_limit"]) for line in lines] == [
        ("warning", 1, LIMIT)
    ]
    assert not [record for record in records if "Exceeded concurrency" in record["msg"]]


def test_each_line_counts_the_events_since_the_line_before(monkeypatch):
    from kefu.serving.server import counted_log

    now = [1000.0]
    lines: list[tuple[int, str, dict]] = []
    logger = SimpleNamespace(log=lambda level, msg, extra: lines.append((level, msg, extra)))
    monkeypatch.setattr(counted_log, "time", SimpleNamespace(monotonic=lambda: now[0]))
    timeouts = counted_log.CountedLog(logger, 20, "closed", ("silent", "partial"))
    timeouts.add("silent", seconds=0.5)
    for at, kind in ((1010.0, "partial"), (1020.0, "silent"), (1059.0, "partial")):
        now[0] = at
        timeouts.add(kind, seconds=0.5)
    now[0] = 1061.0
    timeouts.add("partial", seconds=0.5)
    assert lines == [
        (20, "closed", {"fields": {"seconds": 0.5, "silent": 1, "partial": 0}}),
        (20, "closed", {"fields": {"seconds": 0.5, "silent": 1, "partial": 3}}),
    ]
