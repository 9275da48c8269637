"""Hostile and unlucky clients against a real `kefu serve`: slow bodies, hang-ups, connection
floods, SIGTERM under load, a killed worker. Every test reproduces a failure seen in a probe."""

import json
import os
import select
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from support.serving import Server, copy_bundle, metric, read_response

BODY = json.dumps({"text": "我的快递三天没动了"}).encode()


def raw_request(
    port: int, body: bytes, declared: int | None = None, path="/v1/classify"
) -> socket.socket:
    """A connection that sent the request head and `body` (maybe less than it declared)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-API-Key: k\r\n"
        f"Content-Length: {declared if declared is not None else len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def wait_until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    work = tmp_path_factory.mktemp("reliability")
    running = Server(
        copy_bundle(tiny_bundle, work / "bundle"),
        work / "server.log",
        env={
            "KEFU_BODY_TIMEOUT_SECONDS": "1",
            "KEFU_LIMIT_CONCURRENCY": "40",
            "KEFU_API_KEYS": "k",
        },
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_a_slow_body_is_cut_off_with_408_and_probes_still_answer(server):
    slow = [raw_request(server.port, BODY[:5], declared=len(BODY)) for _ in range(20)]
    try:
        # twenty stalled bodies hold connections; the event loop still answers probes
        assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        for sock in slow:
            status, headers, body = read_response(sock)
            assert status == 408
            assert headers["connection"] == "close"
            assert json.loads(body)["error"]["code"] == "body_timeout"
            assert sock.recv(1) == b""  # the server closed the connection
    finally:
        for sock in slow:
            sock.close()
    assert (
        metric(server.url, "kefu_requests_total", method="POST", route="/v1/classify", status="408")
        >= 20
    )
    assert (
        metric(server.url, "kefu_requests_total", method="POST", route="/v1/classify", status="500")
        == 0
    )


def test_a_client_that_hangs_up_mid_body_is_a_499_not_a_500(server):
    before = metric(
        server.url, "kefu_requests_total", method="POST", route="/v1/classify", status="499"
    )
    for _ in range(5):
        sock = raw_request(server.port, BODY[:5], declared=len(BODY))
        time.sleep(0.05)
        sock.close()
    wait_until(
        lambda: (
            metric(
                server.url, "kefu_requests_total", method="POST", route="/v1/classify", status="499"
            )
            >= before + 5
        ),
        what="five 499s",
    )
    log = server.log()
    assert '"status": 500' not in log


def test_connections_over_limit_concurrency_get_a_fast_503_not_a_hang(server):
    slow = [raw_request(server.port, BODY[:5], declared=len(BODY)) for _ in range(40)]
    try:
        time.sleep(0.2)  # let the server take them all
        refused = httpx.get(f"{server.url}/healthz", timeout=10)
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "concurrency_limit")
    finally:
        for sock in slow:
            sock.close()
    wait_until(
        lambda: httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200,
        what="healthz back to 200",
    )


def test_without_a_key_nothing_is_parsed_over_http(server):
    for body in (b"{", b"x" * (2 << 20), '{"text": "x"}'.encode("utf-16")):
        response = httpx.post(
            f"{server.url}/v1/classify", content=body, headers={"content-type": "application/json"}
        )
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
        assert response.headers["x-content-type-options"] == "nosniff"


def test_error_bodies_do_not_echo_a_huge_key(server):
    response = httpx.post(
        f"{server.url}/v1/classify",
        json={"text": "在吗", "k" * 500_000: 1},
        headers={"X-API-Key": "k"},
        timeout=30,
    )
    assert response.status_code == 422
    assert len(response.content) < 400
    error = response.json()["error"]
    assert error["field"] == "k" * 64 + "…"
    assert (
        error["message"]
        == f"unknown field {'k' * 64}…; check the spelling against the API docs at /docs"
    )


def test_sigterm_drains_in_flight_work_then_exits(tiny_bundle, tmp_path):
    server = Server(tiny_bundle, tmp_path / "drain.log", env={"KEFU_DRAIN_SECONDS": "60"})
    try:
        server.wait_ready()
        in_flight = raw_request(server.port, BODY[:5], declared=len(BODY))  # held mid-body
        kept_alive = httpx.Client(base_url=server.url, timeout=10)
        assert kept_alive.get("/readyz").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        # /readyz turns 503 at once, and the answer asks the client to close the connection
        not_ready = wait_until(
            lambda: (r := kept_alive.get("/readyz")).status_code == 503 and r,
            what="readyz 503",
        )
        assert not_ready.json()["error"]["code"] == "not_ready"
        assert not_ready.headers["connection"] == "close"
        # a request that still arrives is served, with Connection: close
        late = kept_alive.post("/v1/classify", json={"text": "在吗"})
        assert (late.status_code, late.headers["connection"]) == (200, "close")
        assert server.process.poll() is None  # still draining: one request is in flight
        in_flight.sendall(BODY[5:])
        status, headers, body = read_response(in_flight)
        assert status == 200 and json.loads(body)["results"][0]["id"] == "0"
        assert headers["connection"] == "close"
        in_flight.close()
        kept_alive.close()
        assert server.process.wait(timeout=30) == 0
    finally:
        server.stop()
    log = server.log()
    assert '"msg": "draining"' in log and '"msg": "drained"' in log
    assert "Application shutdown complete." in log


def model_info_pids(url: str) -> set[int]:
    """Worker pids of the `kefu_model_info` series in one scrape (multi-process mode adds pid)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        int(line.split('pid="')[1].split('"')[0])
        for line in text.splitlines()
        if line.startswith("kefu_model_info{") and line.rstrip().endswith(" 1.0")
    }


def test_a_killed_worker_leaves_no_model_info_behind(tiny_bundle, tmp_path):
    server = Server(tiny_bundle, tmp_path / "workers.log", "--workers", "2")
    try:
        server.wait_ready()
        workers = wait_until(
            lambda: len(pids := model_info_pids(server.url)) == 2 and pids, what="two workers"
        )
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        # uvicorn starts a replacement; once it has loaded its model, the scrape shows it and
        # no longer the dead worker (before the fix, the dead pid stayed in every scrape)
        replaced = wait_until(
            lambda: len(pids := model_info_pids(server.url)) == 2 and victim not in pids and pids,
            what="the dead worker dropped and its replacement shown",
        )
        assert replaced - workers  # a new pid
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
        assert replaced <= {int(pid) for pid in children.read_text().split()}
        for _ in range(10):  # whichever worker answers the scrape
            assert victim not in model_info_pids(server.url)
    finally:
        server.stop()


def refused_head(port: int, declared: int, extra: str = "") -> socket.socket:
    """A connection that sent only the head of a request the gate refuses (no X-API-Key)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {declared}\r\n\r\n".encode()
    )
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` within `seconds` while the client trickles a byte
    every 0.1 s (each byte would restart uvicorn's keep-alive timer)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            sock.send(b" ")
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed as well
            return True
    return False


def test_a_body_trickled_after_an_early_refusal_is_cut_off_at_the_body_timeout(server):
    # The gate answers 401 from the head; the body the client still owes is then read only
    # until KEFU_BODY_TIMEOUT_SECONDS (1 s here), and the answer closes the connection.
    sock = refused_head(server.port, declared=100_000)
    try:
        sock.sendall(b"{")
        status, headers, body = read_response(sock)
        assert (status, headers["connection"]) == (401, "close")
        assert json.loads(body)["error"]["code"] == "unauthorized"
        assert closed_within(sock, 3.0)
    finally:
        sock.close()


def test_a_declared_body_over_the_limit_is_refused_at_once_and_the_connection_closed(server):
    sock = raw_request(server.port, b"", declared=100 << 20)
    try:
        started = time.monotonic()
        status, headers, body = read_response(sock)
        assert time.monotonic() - started < 0.5  # not held until the body timeout
        assert (status, headers["connection"]) == (413, "close")
        assert json.loads(body)["error"]["code"] == "body_too_large"
        assert closed_within(sock, 3.0)
    finally:
        sock.close()


def test_a_refusal_before_100_continue_closes_the_connection(server):
    # The client waits for "100 Continue" before sending the body; a refusal from the head
    # never asks for it, so the connection cannot carry another request: it is closed.
    sock = refused_head(server.port, declared=len(BODY), extra="Expect: 100-continue\r\n")
    try:
        status, headers, _ = read_response(sock)
        assert (status, headers["connection"]) == (401, "close")
        assert sock.recv(1) == b""
    finally:
        sock.close()


def test_a_refused_request_whose_body_arrived_keeps_its_connection(server):
    sock = refused_head(server.port, declared=len(BODY))
    try:
        sock.sendall(BODY)
        status, headers, _ = read_response(sock)
        assert status == 401 and "connection" not in headers
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
    finally:
        sock.close()


def head_in_pieces(port: int, head_bytes: int) -> socket.socket:
    """A connection that sent a GET /healthz head of about `head_bytes`, in reads of 16 KB
    (one header line), until the server answered or the head ended."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ")
    for _ in range(head_bytes // 16384):
        if select.select([sock], [], [], 0.2)[0]:  # answered: the rest is never sent
            break
        sock.sendall(b"a" * 16384)
    else:
        sock.sendall(b"\r\n\r\n")
    return sock


def test_a_request_head_over_64_kb_gets_431_and_the_connection_is_closed(server):
    # httptools sets no bound: a header line of hundreds of MB filled the worker's memory
    counted = {"code": "head_too_large", "status": "431"}
    before = metric(server.url, "kefu_protocol_errors_total", **counted)
    with head_in_pieces(server.port, 1 << 20) as sock:
        status, headers, body = read_response(sock)
        assert (status, headers["connection"]) == (431, "close")
        assert json.loads(body)["error"] == {
            "code": "head_too_large",
            "message": "the request head (request line and header fields) is over 65536 bytes, "
            "the most the server reads; send shorter headers; the connection is closed",
            "field": None,
        }
        assert sock.recv(1) == b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n")
        status, headers, _ = read_response(sock)  # a head read in one go: measured whole
        assert (status, headers["connection"]) == (431, "close")
    assert metric(server.url, "kefu_protocol_errors_total", **counted) == before + 2
    with head_in_pieces(server.port, 60_000) as sock:  # under the bound, in reads as well
        assert read_response(sock)[0] == 200
