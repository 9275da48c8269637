"""The real thing: `kefu serve` as a process on a free localhost port, spoken to over HTTP."""

import gzip
import json
import os
import subprocess
import time

import httpx
import pytest
from support.paths import REPO_ROOT
from support.serving import KEFU, Server, connect, copy_bundle, read_response

from kefu.serving.bundle import schema as bundle_format

API_KEY = "process-test-key"
ADMIN_TOKEN = "process-admin-token"


def stopped_gracefully(server: Server) -> None:
    # uvicorn finishes the lifespan, then re-raises SIGTERM, which kefu serve exits 0 on
    assert server.stop() == 0
    assert "Application shutdown complete." in server.log()


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    work = tmp_path_factory.mktemp("process")
    bundle = copy_bundle(tiny_bundle, work / "bundle")
    running = Server(
        bundle, work / "server.log", env={"KEFU_API_KEYS": API_KEY, "KEFU_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    try:
        running.wait_ready()
        yield running
    finally:
        stopped_gracefully(running)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=10.0) as client:
        yield client


def test_ready_and_healthy(http):
    assert http.get("/readyz").json() == {"status": "ready", "model_version": "tiny-0"}
    assert http.get("/healthz").json() == {"status": "ok"}


def test_classify_over_http(http):
    response = http.post(
        "/v1/classify",
        json={"messages": [{"id": "a", "text": "转人工 13812345678"}, {"text": "在吗"}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert [result["id"] for result in body["results"]] == ["a", "1"]
    assert "human_requested" in body["results"][0]["route"]["reasons"]
    assert body["results"][0]["route"]["action"] == "human"
    assert body["results"][0]["entities"] == [
        {"kind": "phone", "text": "13812345678", "start": 4, "end": 15}
    ]


def test_bad_input_over_http(http):
    blank = http.post("/v1/classify", json={"messages": [{"text": "ok"}, {"text": " "}]})
    assert (blank.status_code, blank.json()) == (
        422,
        {
            "error": {
                "code": "empty_text",
                "message": "messages[1].text is empty or holds only white space, markup or invisible characters; send the customer's message text",
                "field": "messages[1].text",
            }
        },
    )
    broken = http.post(
        "/v1/classify", content=b'{"text": "a', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    huge = http.post("/v1/classify", json={"text": "a" * (1 << 20)})
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "body_too_large")
    assert http.get("/readyz").status_code == 200  # still serving


def test_a_body_in_another_charset_or_a_gzip_transfer_coding_is_named_over_http(server, http):
    gbk = http.post(
        "/v1/classify",
        content='{"text": "在吗"}'.encode("gbk"),
        headers={"content-type": "application/json; charset=gbk"},
    )
    assert (gbk.status_code, gbk.json()["error"]["message"]) == (
        400,
        "request body is not UTF-8: byte 0xd4 at position 10 (invalid continuation byte); "
        "the Content-Type says charset=gbk, but JSON is UTF-8 only; send the JSON encoded as UTF-8",
    )
    # uvicorn undoes the chunks of `gzip, chunked`, not the gzip: the app names the header
    body = gzip.compress('{"text": "在吗"}'.encode())
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-API-Key: %s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (API_KEY.encode(), len(body), body)
        )
        status, _, answer = read_response(sock)
    assert (status, json.loads(answer)["error"]["message"]) == (
        415,
        "request body is compressed (Transfer-Encoding: gzip, chunked); send it uncompressed "
        "as UTF-8 JSON",
    )


def test_api_key_over_http(server):
    missing = httpx.post(f"{server.url}/v1/classify", json={"text": "在吗"})
    wrong = httpx.post(
        f"{server.url}/v1/classify", json={"text": "在吗"}, headers={"X-API-Key": "nope"}
    )
    for response in (missing, wrong):
        assert (response.status_code, response.json()) == (
            401,
            {
                "error": {
                    "code": "unauthorized",
                    "message": "missing or invalid X-API-Key header",
                    "field": None,
                }
            },
        )


def test_reload_with_a_broken_bundle_keeps_the_old_model(http, tiny_bundle, tmp_path):
    broken = copy_bundle(tiny_bundle, tmp_path / "broken", model_version="tiny-broken")
    (broken / bundle_format.TOKENIZER).write_text("{}", encoding="utf-8")
    response = http.post(
        "/v1/admin/reload", json={"bundle": str(broken)}, headers={"X-Admin-Token": ADMIN_TOKEN}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "bundle_invalid"
    assert "sha256 of tokenizer.json" in response.json()["error"]["message"]
    assert http.post("/v1/classify", json={"text": "在吗"}).json()["model_version"] == "tiny-0"


def test_reload_with_a_good_bundle_swaps(http, tiny_bundle, tmp_path):
    good = copy_bundle(tiny_bundle, tmp_path / "good", model_version="tiny-9")
    response = http.post(
        "/v1/admin/reload", json={"bundle": str(good)}, headers={"X-Admin-Token": ADMIN_TOKEN}
    )
    assert response.status_code == 200
    assert response.json()["previous_model_version"] in {"tiny-0", "tiny-9"}
    assert http.post("/v1/classify", json={"text": "在吗"}).json()["model_version"] == "tiny-9"


def test_metrics_scrape(server, http):
    http.post("/v1/classify", json={"text": "在吗"})
    httpx.post(f"{server.url}/v1/classify", json={"text": "在吗"})  # no key: 401
    text = httpx.get(f"{server.url}/metrics").text
    assert 'kefu_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    assert 'kefu_requests_total{method="POST",route="/v1/classify",status="401"}' in text
    assert "kefu_request_duration_seconds_bucket" in text
    assert "kefu_batch_size_bucket" in text
    assert 'kefu_predictions_total{head="intent"' in text


def test_logs_are_json_lines_without_secrets(server, http):
    http.post(
        "/v1/classify", json={"text": "电话13812345678"}, headers={"X-Request-ID": "log-probe"}
    )
    time.sleep(0.2)
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    probe = [record for record in records if record.get("request_id") == "log-probe"]
    assert len(probe) == 1
    assert "text" not in probe[0]["messages"][0]  # no message text unless KEFU_LOG_TEXT asks
    log = server.log()
    assert API_KEY not in log and ADMIN_TOKEN not in log and "13812345678" not in log


def test_a_bad_policy_stops_kefu_serve_with_a_named_error(tiny_bundle, tmp_path):
    policy = tmp_path / "bad.yaml"
    policy.write_text("max_turns: -1\n", encoding="utf-8")
    completed = subprocess.run(
        [str(KEFU), "serve", "--bundle", str(tiny_bundle), "--policy", str(policy)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 2
    assert (
        completed.stderr.strip()
        == f"kefu serve: {policy}: max_turns must be an integer >= 1, got -1"
    )


def test_a_missing_bundle_stops_kefu_serve_with_a_named_error(tmp_path):
    completed = subprocess.run(
        [str(KEFU), "serve", "--bundle", str(tmp_path / "none")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        f"kefu serve: bundle directory {tmp_path / 'none'} does not exist; pass --bundle DIR (or KEFU_BUNDLE), or build one (`make model` in a checkout, or `kefu train`)"
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_missing_metrics_folder_stops_kefu_serve_whatever_the_workers(
    tiny_bundle, tmp_path, workers
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    completed = subprocess.run(
        [str(KEFU), "serve", "--bundle", str(tiny_bundle), "--workers", workers],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env | {"HF_HUB_OFFLINE": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "none")},
    )
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip() == (
        f"kefu serve: PROMETHEUS_MULTIPROC_DIR={tmp_path / 'none'} is not a writable directory; "
        "create it, or unset it and kefu serve uses a temporary one"
    )


def test_two_workers_serve_and_aggregate_metrics(tiny_bundle, tmp_path):
    server = Server(tiny_bundle, tmp_path / "workers.log", "--workers", "2")
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            for _ in range(8):
                assert client.post("/v1/classify", json={"text": "在吗"}).status_code == 200
            text = client.get("/metrics").text
    finally:
        stopped_gracefully(server)
    total = [
        line
        for line in text.splitlines()
        if line.startswith('kefu_requests_total{method="POST",route="/v1/classify",status="200"}')
    ]
    assert len(total) == 1 and float(total[0].split()[-1]) == 8.0  # summed over both workers
    started = [json.loads(line) for line in server.log().splitlines() if '"model ready"' in line]
    assert len(started) == 2 and {record["ort_threads"] for record in started} == {1}
