"""The three actions over HTTP: clarify with candidates, clarify -> human, the new context
fields and the enumerated codes in the OpenAPI schema."""

import pytest
from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.serving.routing import Action, Reason
from kefu.serving.server.app import create_app


def unsure_client(tiny_bundle, folder, policy_text=""):
    """A server whose intent head always abstains (threshold 1.0): every message is unsure.

    The random model's near-uniform probabilities would make "high urgency and upset likely
    enough" fire on almost any text, so its probability bar is off here (labels only);
    `policy_text` adds policy keys of the caller's.
    """
    policy = folder / "policy.yaml"
    rules = "rules: {high_urgency_negative: {min_probability: null}}\n"
    policy.write_text(rules + policy_text, "utf-8")
    settings = isolated_settings(
        tiny_bundle, thresholds={"intent": {"threshold": 1.0}}, policy=policy
    )
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def unsure(tiny_bundle, tmp_path_factory):
    with unsure_client(tiny_bundle, tmp_path_factory.mktemp("policy")) as client:
        yield client


@pytest.fixture(scope="module")
def unsure_offering_two(tiny_bundle, tmp_path_factory):
    """As `unsure`, but any intent may be offered: the tiny model's intents are all about
    equally likely (under the default min_confidence 0.1), so max_candidates 2 is what cuts."""
    offer_two = "clarify: {max_candidates: 2, min_confidence: 0.0}\n"
    with unsure_client(tiny_bundle, tmp_path_factory.mktemp("policy"), offer_two) as client:
        yield client


def routes(client, messages):
    response = client.post("/v1/classify", json={"messages": messages})
    assert response.status_code == 200, response.text
    return {result["id"]: result for result in response.json()["results"]}


def plain_text(client):
    """A text the tiny model routes on low confidence alone (no content rule fires)."""
    for text in ("发票", "谢谢", "好的", "商品", "你好", "快递", "在吗", "尺码"):
        route = routes(client, [{"id": "t", "text": text}])["t"]["route"]
        if route["reasons"] == ["low_confidence"]:
            return text
    pytest.skip("every probe text triggers a content rule on this random model")


def test_low_confidence_alone_asks_the_customer_to_choose(unsure, tiny_bundle):
    text = plain_text(unsure)
    result = routes(unsure, [{"id": "t", "text": text}])["t"]
    route = result["route"]
    assert (route["action"], route["escalate"], route["reasons"]) == (
        "clarify",
        False,
        ["low_confidence"],
    )
    top = result["intent"]["top"]
    expected = [top[0]] + [item for item in top[1:] if item["confidence"] >= 0.1]
    assert [(c["intent"], c["confidence"]) for c in route["candidates"]] == [
        (item["label"], item["confidence"]) for item in expected
    ]
    names = {
        item["label"]: item["name"] for item in unsure.get("/v1/model").json()["labels"]["intent"]
    }
    assert all(c["name"] == names[c["intent"]] for c in route["candidates"])


def test_clarify_offers_several_intents_best_first_with_their_names(unsure_offering_two):
    text = plain_text(unsure_offering_two)
    result = routes(unsure_offering_two, [{"id": "t", "text": text}])["t"]
    route = result["route"]
    assert (route["action"], route["reasons"]) == ("clarify", ["low_confidence"])
    labels = unsure_offering_two.get("/v1/model").json()["labels"]["intent"]
    names = {item["label"]: item["name"] for item in labels}
    top = result["intent"]["top"]
    assert route["candidates"] == [
        {"intent": item["label"], "name": names[item["label"]], "confidence": item["confidence"]}
        for item in top[:2]
    ]
    confidences = [candidate["confidence"] for candidate in route["candidates"]]
    assert confidences[0] > confidences[1]


def test_a_failed_clarification_hands_over(unsure):
    text = plain_text(unsure)
    results = routes(
        unsure,
        [
            {"id": "first", "text": text, "context": {"turn": 1}},
            {"id": "counted", "text": text, "context": {"turn": 2, "clarifications": 1}},
            {"id": "abstained", "text": text, "context": {"turn": 2, "previous_intents": [None]}},
            {"id": "old", "text": text, "context": {"turn": 2, "previous_intents": ["payment"]}},
        ],
    )
    actions = {key: (r["route"]["action"], r["route"]["reasons"]) for key, r in results.items()}
    failed = ("human", ["low_confidence", "clarification_failed"])
    assert actions == {
        "first": ("clarify", ["low_confidence"]),
        "counted": failed,
        "abstained": failed,
        "old": ("clarify", ["low_confidence"]),
    }
    assert all(not results[key]["route"]["candidates"] for key in ("counted", "abstained"))


@pytest.mark.parametrize(
    ("context", "field", "code"),
    [
        ({"clarifications": -1}, "context.clarifications", "out_of_range"),
        ({"clarifications": "1"}, "context.clarifications", "invalid_type"),
        ({"previous_intents": [1]}, "context.previous_intents[0]", "invalid_type"),
        ({"previous_intents": [None, "refund"]}, "context.previous_intents[1]", "unknown_intent"),
    ],
)
def test_bad_context_fields_are_named(unsure, context, field, code):
    response = unsure.post("/v1/classify", json={"text": "在吗", "context": context})
    assert response.status_code == 422
    assert (response.json()["error"]["field"], response.json()["error"]["code"]) == (field, code)


def test_the_openapi_schema_enumerates_actions_and_reason_codes(unsure):
    schemas = unsure.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["Action"]["enum"] == [action.value for action in Action]
    assert schemas["Reason"]["enum"] == [reason.value for reason in Reason]
    route = schemas["Route"]["properties"]
    assert route["action"]["$ref"].endswith("/Action")
    assert route["reasons"]["items"]["$ref"].endswith("/Reason")
    assert set(schemas["Route"]["required"]) >= {"action", "reasons", "candidates"}
