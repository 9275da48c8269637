"""Prometheus metrics and the JSON access log (one line per request, text masked, no secrets)."""

import asyncio
import json
import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support.serving import isolated_settings

from kefu.serving.server.access_log import JsonFormatter, logged_text
from kefu.serving.server.app import create_app
from kefu.serving.server.drain import Drain
from kefu.serving.server.metrics import Metrics
from kefu.serving.server.middleware import RequestContextMiddleware


def samples(client):
    """{(sample name, frozenset(labels)): value} of one /metrics scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(scrape, name, **labels):
    return scrape.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def client(tiny_bundle):
    settings = isolated_settings(
        tiny_bundle, thresholds={"intent": {"threshold": 1.0}}, api_keys=["sekret-key"]
    )
    with TestClient(create_app(settings), headers={"X-API-Key": "sekret-key"}) as test_client:
        yield test_client


def test_metrics_count_requests_batches_predictions_abstentions_and_escalations(client):
    batch = {
        "messages": [{"text": "在吗", "context": {"turn": 5}}, {"text": "转人工"}, {"text": "发票"}]
    }
    routes = []
    for body in (batch, {"text": "谢谢"}):
        response = client.post("/v1/classify", json=body)
        assert response.status_code == 200
        routes += [result["route"] for result in response.json()["results"]]
    assert client.post("/v1/classify", json={"text": ""}).status_code == 422
    assert client.get("/nowhere").status_code == 404
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    scrape = samples(client)
    route = {"route": "/v1/classify", "method": "POST"}
    assert value(scrape, "kefu_requests_total", status="200", **route) == 2
    assert value(scrape, "kefu_requests_total", status="422", **route) == 1
    assert value(scrape, "kefu_requests_total", route="unmatched", method="GET", status="404") == 1
    assert (
        value(scrape, "kefu_requests_total", route="/openapi.json", method="GET", status="200") == 1
    )
    assert value(scrape, "kefu_requests_total", route="/docs", method="GET", status="200") == 1
    assert value(scrape, "kefu_request_duration_seconds_count", status="200", **route) == 2
    assert (
        value(scrape, "kefu_request_duration_seconds_bucket", status="200", le="+Inf", **route) == 2
    )
    assert value(scrape, "kefu_batch_size_count") >= 2
    assert value(scrape, "kefu_batch_size_sum") == 4  # messages, not requests
    for head in ("intent", "urgency", "emotion"):
        predicted = sum(
            v
            for (name, labels), v in scrape.items()
            if name == "kefu_predictions_total" and ("head", head) in labels
        )
        assert predicted == 4
    assert value(scrape, "kefu_abstentions_total", head="intent") == 4  # threshold 1.0: always
    assert value(scrape, "kefu_escalations_total", reason="low_confidence") == 4
    assert value(scrape, "kefu_escalations_total", reason="long_conversation") == 1
    assert value(scrape, "kefu_escalations_total", reason="human_requested") == 1
    actions = [route["action"] for route in routes]
    assert actions[:2] == ["human", "human"]  # turn 5; 转人工
    for action in ("bot", "clarify", "human"):
        assert value(scrape, "kefu_actions_total", action=action) == actions.count(action)
    assert value(scrape, "kefu_escalated_messages_total") == actions.count("human")
    assert value(scrape, "kefu_model_info", model_version="tiny-0", variant="fp32") == 1
    assert value(scrape, "kefu_queue_depth") == 0
    assert not any(name.endswith("_created") for name, _ in scrape)


def access_lines(caplog):
    return [record for record in caplog.records if record.name == "kefu.access"]


def test_one_access_log_line_per_request_without_text_by_default(client, caplog):
    caplog.set_level(logging.INFO, logger="kefu")
    text = "订单123456789012没到，电话13812345678"
    response = client.post(
        "/v1/classify",
        json={"messages": [{"id": "m1", "text": text}]},
        headers={"X-Request-ID": "req-1"},
    )
    client.post("/v1/classify", json={"text": " "})
    records = access_lines(caplog)
    assert len(records) == 2
    line = json.loads(JsonFormatter().format(records[0]))
    result = response.json()["results"][0]
    assert {
        key: line[key]
        for key in ("level", "logger", "msg", "request_id", "method", "path", "status")
    } == {
        "level": "info",
        "logger": "kefu.access",
        "msg": "request",
        "request_id": "req-1",
        "method": "POST",
        "path": "/v1/classify",
        "status": 200,
    }
    assert line["duration_ms"] > 0
    assert line["model_version"] == "tiny-0"
    assert line["messages"] == [
        {
            "id": "m1",
            "intent": result["intent"]["label"],
            "urgency": result["urgency"]["label"],
            "emotion": result["emotion"]["label"],
            "queue": result["route"]["queue"],
            "priority": result["route"]["priority"],
            "action": result["route"]["action"],
            "escalate": result["route"]["escalate"],
            "reasons": result["route"]["reasons"],
            "truncated": False,
        }
    ]
    assert json.loads(JsonFormatter().format(records[1]))["status"] == 422


def test_secrets_and_raw_numbers_never_reach_the_log(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.post("/v1/classify", json={"text": "电话13812345678"})
    client.post("/v1/classify", json={"text": "x"}, headers={"X-API-Key": "wrong-key-value"})
    formatted = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert "sekret-key" not in formatted
    assert "wrong-key-value" not in formatted
    assert "13812345678" not in formatted


def test_raw_text_is_logged_only_when_enabled(tiny_bundle, caplog):
    caplog.set_level(logging.INFO, logger="kefu")
    with TestClient(create_app(isolated_settings(tiny_bundle, log_text=True))) as client:
        client.post("/v1/classify", json={"text": "电话13812345678"})
    line = json.loads(JsonFormatter().format(access_lines(caplog)[0]))
    assert line["messages"][0]["text"] == "电话13812345678"


@pytest.mark.parametrize(
    ("mode", "logged"),
    [
        ("off", None),
        ("masked", "订单<order_id>没到，电话<phone>"),
        ("raw", "订单123456789012没到，电话13812345678"),
    ],
)
def test_text_is_logged_only_as_asked(tiny_bundle, caplog, mode, logged):
    caplog.set_level(logging.INFO, logger="kefu")
    with TestClient(create_app(isolated_settings(tiny_bundle, log_text=mode))) as client:
        client.post(
            "/v1/classify",
            json={"id": "13812345678", "text": "订单123456789012没到，电话13812345678"},
        )
    entry = json.loads(JsonFormatter().format(access_lines(caplog)[0]))["messages"][0]
    assert entry["id"] == "<phone>"  # ids are masked in every mode
    assert entry.get("text") == logged


def test_logged_text_is_shortened():
    assert logged_text("快" * 250, raw=True) == "快" * 200 + "...(+50 chars)"
    assert logged_text("快" * 250) == "快" * 200 + "...(+50 chars)"
    # masked before the cut: a phone number across the 200th character is masked whole, and
    # its marker kept whole; N counts the original characters left out
    assert (
        logged_text("快" * 195 + "13812345678" + "快" * 50) == "快" * 195 + "<phone>...(+50 chars)"
    )
    assert (
        logged_text("快" * 199 + "SF1234567890123" + "快" * 9)
        == "快" * 199 + "<tracking_number>...(+9 chars)"
    )
    # a marker that ends at the cut, then nothing: the text is whole
    assert logged_text("快" * 193 + "13812345678") == "快" * 193 + "<phone>"
    # a keyword stays readable up to its value's marker
    assert (
        logged_text("快" * 194 + "QQ号: 12345678" + "快" * 9)
        == "快" * 194 + "QQ号: <qq>...(+9 chars)"
    )


def test_a_logged_text_never_ends_inside_a_marker():
    texts = [
        ("快" * start + "联系我 13812345678 或 a.b@example.com" + "好" * 300)
        for start in range(170, 205)
    ]
    markers = ("<phone>", "<email>")
    for text in texts:
        shown = logged_text(text).rpartition("...(+")[0]
        assert shown.count("<") == shown.count(">"), shown
        assert all(not shown.endswith(marker[:cut]) for marker in markers for cut in range(1, 7))


def test_markers_shorter_than_their_data_do_not_bring_unmasked_digits_into_the_log():
    # six masked e-mail addresses shrink 234 characters to 48: the bank card number after them
    # must be masked whole, not seen as 6 digits at the end of a fixed 240-character head
    text = ("x" * 26 + "@example.com ") * 6 + "6222021234567890" + "快" * 300
    shown = logged_text(text)
    assert shown.startswith("<email> " * 6 + "<order_id>快")
    assert "622202" not in shown
    assert shown.endswith(f"...(+{len(text) - (234 + 16 + 200 - 48 - 10)} chars)")


def test_a_text_whose_masked_form_fits_is_logged_whole():
    text = "13812345678，" * 20  # 240 characters, 160 once masked
    assert logged_text(text) == "<phone>，" * 20


def call_middleware(inner_app):
    """Run RequestContextMiddleware around `inner_app` for one POST; returns (sent messages, metrics)."""
    metrics = Metrics()
    middleware = RequestContextMiddleware(inner_app, metrics, Drain(0))
    sent = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/classify",
        "headers": [],
        "query_string": b"",
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def run():
        await middleware(scope, receive, send)

    try:
        asyncio.run(run())
    except asyncio.CancelledError:
        sent.append("cancelled")
    return sent, metrics


def test_an_unexpected_exception_becomes_a_json_500_with_the_request_id(caplog):
    async def broken(scope, receive, send):
        raise RuntimeError("bug")

    sent, metrics = call_middleware(broken)
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 500
    request_id = headers[b"x-request-id"].decode()
    assert json.loads(body["body"]) == {
        "error": {
            "code": "internal_error",
            "message": f"internal error; quote request id {request_id}",
            "field": None,
        }
    }
    assert metrics.requests.labels("unmatched", "POST", "500")._value.get() == 1
    assert any(record.name == "kefu.error" and record.exc_info for record in caplog.records)


def test_a_client_that_hung_up_is_counted_as_499_not_500():
    async def cancelled(scope, receive, send):
        raise asyncio.CancelledError

    sent, metrics = call_middleware(cancelled)
    assert sent == ["cancelled"]
    assert metrics.requests.labels("unmatched", "POST", "499")._value.get() == 1


def test_access_lines_are_written_by_the_log_thread_and_flushed_on_demand():
    import io
    import threading

    from kefu.serving.server.access_log import BackgroundJsonHandler, Deferred

    stream = io.StringIO()
    handler = BackgroundJsonHandler(stream)
    built_on = []

    def entries():
        built_on.append(threading.current_thread())
        return [{"id": "<phone>"}]

    try:
        record = logging.LogRecord("kefu.access", logging.INFO, __file__, 1, "request", (), None)
        record.fields = {"status": 200, "messages": Deferred(entries)}
        handler.handle(record)
        handler.flush()
        other = logging.LogRecord(
            "kefu.runtime", logging.INFO, __file__, 1, "model ready", (), None
        )
        handler.handle(other)  # written at once, by the caller
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        handler.close()
    assert [(line["msg"], line.get("messages")) for line in lines] == [
        ("request", [{"id": "<phone>"}]),
        ("model ready", None),
    ]
    assert built_on and built_on[0] is not threading.current_thread()


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("a" * 128, True),
        ("req-1.2:3_X", True),
        ("a" * 129, False),  # longer than 128 characters
        ("req 1", False),  # a space: not of A-Za-z0-9._:-
        ("请求-1", False),
    ],
)
def test_a_callers_request_id_is_kept_only_when_short_and_plain(client, sent, kept):
    response = client.post(
        "/v1/classify",
        json={"text": "在吗"},
        headers={"X-Request-ID": sent.encode()},
    )
    answered = response.headers["X-Request-ID"]
    assert answered == response.json()["request_id"]
    if kept:
        assert answered == sent
    else:
        assert answered != sent and len(answered) == 32  # a fresh random id, in hex
