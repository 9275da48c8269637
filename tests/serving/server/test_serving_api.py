"""POST /v1/classify and the read-only endpoints through FastAPI's TestClient: every field."""

import pytest
from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.classifier import Classifier
from kefu.serving.routing import ConversationContext, decide
from kefu.serving.routing_policy import RoutingPolicy
from kefu.serving.server.app import create_app
from kefu.serving.taxonomy import HEADS

HEAD_KEYS = {"label", "name", "confidence", "abstain", "top"}
RESULT_KEYS = {"id", *HEADS, "group", "route", "entities", "truncated"}


@pytest.fixture(scope="module")
def client(tiny_bundle):
    with TestClient(create_app(isolated_settings(tiny_bundle))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def core(tiny_bundle):
    classifier = Classifier.from_bundle(tiny_bundle, intra_op_threads=1)
    return classifier, RoutingPolicy.for_bundle(classifier.bundle)


def classify(client, body, **kwargs):
    response = client.post("/v1/classify", json=body, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_single_text_response_shape(client):
    response = client.post("/v1/classify", json={"text": "我的快递三天没动了"})
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"model_version", "request_id", "results"}
    assert body["model_version"] == "tiny-0"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert len(body["results"]) == 1
    result = body["results"][0]
    assert set(result) == RESULT_KEYS
    assert result["id"] == "0"
    assert result["truncated"] is False
    assert result["entities"] == []
    assert set(result["route"]) == {
        "queue",
        "priority",
        "action",
        "escalate",
        "reasons",
        "candidates",
    }
    for head in HEADS:
        assert set(result[head]) == HEAD_KEYS
        assert [set(item) for item in result[head]["top"]] == [{"label", "confidence"}] * 3


def test_results_are_exactly_what_the_core_predicts_and_routes(client, core, tiny_bundle):
    classifier, policy = core
    text = "退款怎么还没到账！！转人工"
    context = {"turn": 5, "previous_intents": ["refund_return"]}
    result = classify(client, {"text": text, "id": "t1", "context": context})["results"][0]
    prediction = classifier.predict([text])[0]
    # routing reads every label's probability (P(high) x P(anxious or dissatisfied)), not the top 3
    every_label = classifier.predict([text], top_k=len(classifier.bundle.label_names["intent"]))[0]
    decision = decide(every_label, ConversationContext(5, ("refund_return",)), policy)
    bundle = read_bundle(tiny_bundle)
    for head in HEADS:
        expected = prediction.heads[head]
        assert result[head]["label"] == expected.label
        assert result[head]["name"] == bundle.label_names[head][expected.label]
        assert result[head]["confidence"] == pytest.approx(expected.confidence, abs=1e-6)
        assert result[head]["abstain"] == expected.abstain
        assert [item["label"] for item in result[head]["top"]] == [
            label for label, _ in expected.top
        ]
    assert result["group"] == bundle.intent_groups[prediction.intent.label]
    assert result["route"] == {
        "queue": decision.queue,
        "priority": decision.priority,
        "action": decision.action,
        "escalate": decision.escalate,
        "reasons": decision.reasons,
        "candidates": [],
    }
    assert result["route"]["action"] == "human"
    assert result["id"] == "t1"
    assert "human_requested" in result["route"]["reasons"]
    assert "long_conversation" in result["route"]["reasons"]


def test_batch_keeps_order_ids_and_defaults_ids_to_positions(client):
    texts = ["在吗", "我的快递三天没动了", "发票开了没", "谢谢"]
    messages = [
        {"id": "a", "text": texts[0]},
        {"text": texts[1]},
        {"id": "c", "text": texts[2]},
        {"text": texts[3]},
    ]
    batch = classify(client, {"messages": messages})["results"]
    assert [result["id"] for result in batch] == ["a", "1", "c", "3"]
    for text, result in zip(texts, batch, strict=True):
        alone = classify(client, {"text": text})["results"][0]
        assert result["intent"]["label"] == alone["intent"]["label"]
        assert result["intent"]["confidence"] == pytest.approx(
            alone["intent"]["confidence"], abs=1e-6
        )


def test_context_turn_and_previous_intents_drive_escalation(client):
    intent = classify(client, {"text": "在吗"})["results"][0]["intent"]["label"]
    messages = [
        {"id": "short", "text": "在吗", "context": {"turn": 3}},
        {"id": "long", "text": "在吗", "context": {"turn": 4}},
        {"id": "repeat", "text": "在吗", "context": {"previous_intents": [intent]}},
    ]
    reasons = {
        r["id"]: r["route"]["reasons"] for r in classify(client, {"messages": messages})["results"]
    }
    assert "long_conversation" not in reasons["short"]
    assert "long_conversation" in reasons["long"]
    assert "repeated_intent" in reasons["repeat"]


def test_entities_with_spans(client):
    text = "订单123456789012退款¥99，电话13812345678"
    entities = classify(client, {"text": text})["results"][0]["entities"]
    assert entities == [
        {"kind": "order_id", "text": "123456789012", "start": 2, "end": 14},
        {"kind": "amount", "text": "¥99", "start": 16, "end": 19},
        {"kind": "phone", "text": "13812345678", "start": 22, "end": 33},
    ]


def test_text_longer_than_the_model_window_is_truncated_and_flagged(client):
    result = classify(client, {"text": "快递没到" * 100 + "怎么办"})["results"][0]
    assert result["truncated"] is True


def test_caller_request_id_is_echoed_when_plain(client):
    response = client.post(
        "/v1/classify", json={"text": "在吗"}, headers={"X-Request-ID": "abc-123"}
    )
    assert response.headers["X-Request-ID"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"
    unsafe = client.post("/v1/classify", json={"text": "在吗"}, headers={"X-Request-ID": "a b\tc"})
    assert unsafe.headers["X-Request-ID"] != "a b\tc"
    assert len(unsafe.headers["X-Request-ID"]) == 32


def test_error_responses_carry_a_request_id(client):
    response = client.post("/v1/classify", json={"text": ""})
    assert response.status_code == 422
    assert len(response.headers["X-Request-ID"]) == 32


def test_top_k_and_threshold_overrides_from_settings(tiny_bundle):
    settings = isolated_settings(tiny_bundle, top_k=5, thresholds={"intent": {"threshold": 1.0}})
    with TestClient(create_app(settings)) as client:
        result = classify(client, {"text": "在吗"})["results"][0]
        info = client.get("/v1/model").json()
    assert len(result["intent"]["top"]) == 5
    assert len(result["urgency"]["top"]) == 4  # only 4 urgency labels
    assert result["intent"]["abstain"] is True
    assert "low_confidence" in result["route"]["reasons"]
    assert info["calibration"]["intent"] == {"temperature": 1.0, "threshold": 1.0, "margin": 0.0}
    assert info["limits"]["top_k"] == 5


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "model_version": "tiny-0"},
    )


def test_not_ready_before_the_model_is_loaded(tiny_bundle):
    client = TestClient(create_app(isolated_settings(tiny_bundle)))  # no `with`: no lifespan
    expected = {
        "error": {
            "code": "not_ready",
            "message": "the model is not loaded yet (or the server is shutting down)",
            "field": None,
        }
    }
    for response in (client.get("/readyz"), client.post("/v1/classify", json={"text": "在吗"})):
        assert (response.status_code, response.json()) == (503, expected)
        assert response.headers["Retry-After"] == "1"
    assert client.get("/healthz").status_code == 200


def test_model_endpoint_lists_manifest_labels_thresholds_policy_limits(client, taxonomy):
    info = client.get("/v1/model").json()
    assert info["model_version"] == "tiny-0"
    assert info["variant"] == "fp32"
    assert info["manifest"]["base_model"] == "tiny-random-bert"
    for head in HEADS:
        assert [item["label"] for item in info["labels"][head]] == list(taxonomy.labels(head))
    assert info["labels"]["intent"][0] == {"label": "product_info", "name": "商品咨询"}
    assert info["intent_groups"]["complaint"] == "escalation"
    assert info["queues"]["escalation"] == "投诉专席"
    assert info["policy"]["rules"]["long_conversation"] == {
        "max_turns": 3,
        "ignore_intents": ["greeting"],
    }
    assert info["policy"]["rules"]["complaint"] == {"intents": ["complaint"]}
    assert info["policy"]["clarify"] == {"max_candidates": 3, "min_confidence": 0.1}
    assert info["limits"] == {
        "max_batch": 64,
        "max_text_chars": 20000,
        "max_body_bytes": 1 << 20,
        "max_metadata_bytes": 1024,
        "max_length_tokens": 64,
        "top_k": 3,
    }


def test_int8_variant_is_served_when_chosen(tiny_bundle):
    with TestClient(create_app(isolated_settings(tiny_bundle, variant="int8"))) as client:
        assert client.get("/v1/model").json()["variant"] == "int8"
        assert classify(client, {"text": "在吗"})["model_version"] == "tiny-0"


def test_openapi_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    assert {
        "/v1/classify",
        "/v1/model",
        "/v1/admin/reload",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(schema["paths"])
    assert "ErrorBody" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_the_body_built_without_the_response_model_is_exactly_what_the_model_answers(client):
    """The answer is serialised directly; the documented model must parse it and give it back."""
    from kefu.serving.server.response_schemas import ClassifyResponse

    response = client.post(
        "/v1/classify",
        json={
            "messages": [
                {"id": "m1", "text": "转人工 订单123456789012 退款99元", "metadata": {"n": 1}},
                {"text": "在吗", "context": {"turn": 2, "previous_intents": [None]}},
                {"text": "我的快递三天没动了" * 30},
            ]
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    parsed = ClassifyResponse.model_validate_json(response.content)  # enums, types, fields
    assert parsed.model_dump(mode="json", exclude_unset=True) == response.json()
    assert [result.metadata for result in parsed.results] == [{"n": 1}, None, None]
    assert "metadata" not in response.json()["results"][1]


def test_echoed_metadata_with_nan_is_answered_as_null(client):
    body = b'{"text": "\xe5\x9c\xa8\xe5\x90\x97", "metadata": {"score": NaN, "big": 123456789012345678901234567890}}'
    response = client.post(
        "/v1/classify", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["metadata"] == {
        "score": None,
        "big": 123456789012345678901234567890,
    }


@pytest.mark.parametrize("range_header", ["bytes=abc", "bytes=5-1", "items=1-2", "bytes=99999999-"])
def test_the_docs_assets_are_sent_whole_whatever_the_range_asked(client, range_header):
    whole = client.get("/docs/assets/swagger-ui.css")
    assert whole.status_code == 200
    assert "accept-ranges" not in whole.headers
    response = client.get("/docs/assets/swagger-ui.css", headers={"Range": range_header})
    assert (response.status_code, response.content) == (200, whole.content)
