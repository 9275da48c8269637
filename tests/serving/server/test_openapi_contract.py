"""What /openapi.json promises, held against what the server answers: content types, the
headers answers carry, the error envelope, and request rules a JSON Schema can state. Clients
generated from the schema trust it, so each promise here is checked on a real answer."""

import json

import pytest
from fastapi.testclient import TestClient
from support.serving import error, isolated_settings

from kefu.serving.server.app import create_app

OPERATIONS = {
    ("post", "/v1/classify"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/model"),
    ("post", "/v1/admin/reload"),
}
# The connection layer answers these before a request id exists (openapi_errors.py).
CONNECTION_LAYER_STATUSES = {"400", "408", "431", "503"}


@pytest.fixture(scope="module")
def admin_client(tiny_bundle):
    with TestClient(create_app(isolated_settings(tiny_bundle, admin_token="admin"))) as client:
        yield client


@pytest.fixture(scope="module")
def openapi(admin_client):
    return admin_client.get("/openapi.json").json()


def responses_of(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                yield (method, path), status, response


def test_the_schema_lists_every_operation(openapi):
    assert {(method, path) for (method, path), _, _ in responses_of(openapi)} == OPERATIONS


def test_metrics_are_declared_in_the_two_formats_they_are_answered_in(openapi, admin_client):
    declared = openapi["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert declared == {
        "text/plain": {"schema": {"type": "string"}},
        "application/openmetrics-text": {"schema": {"type": "string"}},
    }
    for media_type in declared:
        answer = admin_client.get("/metrics", headers={"Accept": media_type})
        assert answer.status_code == 200
        assert answer.headers["content-type"].split(";")[0] == media_type
        assert 'kefu_requests_total{method="GET",route="/openapi.json"' in answer.text
        assert answer.text.endswith("# EOF\n") is (media_type == "application/openmetrics-text")


def test_every_response_declares_x_request_id_promised_unless_the_connection_layer_answers(
    openapi,
):
    for operation, status, response in responses_of(openapi):
        header = response["headers"]["X-Request-ID"]
        assert header["schema"] == {"type": "string"}, (operation, status)
        assert header["required"] is (status not in CONNECTION_LAYER_STATUSES), (operation, status)


def test_answers_carry_the_request_id_the_schema_promises(admin_client):
    sent = {"X-Request-ID": "contract-7"}
    answers = [
        admin_client.get("/healthz", headers=sent),
        admin_client.get("/readyz", headers=sent),
        admin_client.get("/metrics", headers=sent),
        admin_client.get("/v1/model", headers=sent),
        admin_client.post("/v1/classify", json={"text": "在吗"}, headers=sent),
        admin_client.post("/v1/classify", json={"text": ""}, headers=sent),  # 422
        admin_client.post(
            "/v1/admin/reload", json={"variant": "int4"}, headers=sent | {"X-Admin-Token": "admin"}
        ),  # 422
        admin_client.post("/v1/admin/reload", headers=sent | {"X-Admin-Token": "wrong"}),  # 401
    ]
    assert [answer.headers["X-Request-ID"] for answer in answers] == ["contract-7"] * len(answers)
    assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 200, 422, 422, 401]


def test_every_503_declares_retry_after_and_the_answer_carries_it(openapi, tiny_bundle):
    declared = [
        (operation, response["headers"]["Retry-After"])
        for operation, status, response in responses_of(openapi)
        if status == "503"
    ]
    assert {operation for operation, _ in declared} == OPERATIONS - {
        ("get", "/healthz"),
        ("get", "/metrics"),
    }
    for operation, header in declared:
        assert header["required"] is True, operation
        assert header["schema"] == {"type": "integer", "minimum": 0}, operation
    settings = isolated_settings(tiny_bundle, retry_after_seconds=3)
    not_loaded = TestClient(create_app(settings))  # no `with`: no lifespan, no model
    answer = not_loaded.get("/v1/model")
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "3")
    assert answer.json() == error(
        "not_ready", "the model is not loaded yet (or the server is shutting down)"
    )


def test_the_error_detail_requires_field_as_every_error_answers_it(openapi, admin_client):
    detail = openapi["components"]["schemas"]["ErrorDetail"]
    assert detail["required"] == ["code", "message", "field"]
    assert detail["properties"]["field"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    missing = admin_client.get("/nowhere")
    assert (missing.status_code, missing.json()) == (
        404,
        error("not_found", "no endpoint at /nowhere; see /docs"),
    )


def test_the_request_schema_states_what_the_handlers_refuse(openapi, taxonomy):
    schemas = openapi["components"]["schemas"]
    text = schemas["Message"]["properties"]["text"]
    assert (text["type"], text["minLength"]) == ("string", 1)
    single_text = schemas["ClassifyRequest"]["properties"]["text"]["anyOf"]
    assert single_text[0]["minLength"] == 1 and single_text[1] == {"type": "null"}
    messages = schemas["ClassifyRequest"]["properties"]["messages"]["anyOf"]
    assert messages[0] == {
        "items": {"$ref": "#/components/schemas/Message"},
        "type": "array",
        "minItems": 1,
    }
    # a reference to the one IntentId type, not an enum of its own (a second type in clients)
    intent = schemas["Context"]["properties"]["previous_intents"]["items"]["anyOf"]
    assert intent == [{"$ref": "#/components/schemas/IntentId"}, {"type": "null"}]
    assert schemas["IntentId"]["enum"] == list(taxonomy.labels("intent"))
    variant = schemas["ReloadRequest"]["properties"]["variant"]["anyOf"]
    assert variant == [{"type": "string", "enum": ["fp32", "int8"]}, {"type": "null"}]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"messages": []},
            error("empty_messages", "messages is empty; send 1 to 64 messages", "messages"),
        ),
        (
            {"text": ""},
            error(
                "empty_text",
                "text is empty or holds only white space, markup or invisible characters; "
                "send the customer's message text",
                "text",
            ),
        ),
        (
            {"text": "在吗", "context": {"previous_intents": ["greeting", "bogus"]}},
            error(
                "unknown_intent",
                "context.previous_intents[1] is 'bogus', not an intent id; "
                "the ids are listed at GET /v1/model",
                "context.previous_intents[1]",
            ),
        ),
    ],
)
def test_what_the_schema_now_refuses_keeps_the_handlers_code_and_message(
    admin_client, body, expected
):
    answer = admin_client.post("/v1/classify", json=body)
    assert (answer.status_code, answer.json()) == (422, expected)


def test_a_reload_variant_outside_the_schemas_enum_keeps_its_code(admin_client):
    answer = admin_client.post(
        "/v1/admin/reload", json={"variant": "fp16"}, headers={"X-Admin-Token": "admin"}
    )
    assert (answer.status_code, answer.json()) == (
        422,
        error(
            "invalid_input",
            "unknown model variant 'fp16'; expected one of ['fp32', 'int8']",
            "variant",
        ),
    )


def test_an_empty_reload_bundle_or_variant_is_refused_not_taken_for_the_current_one(
    openapi, admin_client
):
    """The schema leaves "" out of both; the server once reloaded the current model for it."""
    reload = openapi["components"]["schemas"]["ReloadRequest"]["properties"]
    assert reload["bundle"]["anyOf"][0] == {"type": "string", "minLength": 1, "maxLength": 4096}
    admin = {"X-Admin-Token": "admin"}
    empty_variant = admin_client.post("/v1/admin/reload", json={"variant": ""}, headers=admin)
    assert (empty_variant.status_code, empty_variant.json()) == (
        422,
        error(
            "invalid_input", "unknown model variant ''; expected one of ['fp32', 'int8']", "variant"
        ),
    )
    empty_bundle = admin_client.post("/v1/admin/reload", json={"bundle": ""}, headers=admin)
    assert (empty_bundle.status_code, empty_bundle.json()) == (
        422,
        error(
            "bundle_invalid",
            "bundle is empty; name the bundle directory, or leave bundle out to reload the "
            "current one",
            "bundle",
        ),
    )
    unchanged = admin_client.post("/v1/admin/reload", json={}, headers=admin)
    assert unchanged.status_code == 200
    assert unchanged.json()["previous_model_version"] == unchanged.json()["model_version"]


NULL = {"type": "null"}


def test_the_request_schema_states_one_form_or_the_other(openapi):
    """`text` or `messages`, never both nor neither: one branch of `oneOf` per form, each naming
    its field as required and the other form's fields as absent or null."""
    one_form = openapi["components"]["schemas"]["ClassifyRequest"]["oneOf"]
    assert [branch["required"] for branch in one_form] == [["text"], ["messages"]]
    assert one_form[0]["properties"]["messages"] == NULL
    # each branch keeps its field's own schema, so a generated client keeps typed messages
    assert one_form[0]["properties"]["text"]["minLength"] == 1
    assert one_form[1]["properties"]["messages"]["items"] == {
        "$ref": "#/components/schemas/Message"
    }
    batch_nulls = {name for name, kind in one_form[1]["properties"].items() if kind == NULL}
    assert batch_nulls == {"text", "id", "context", "metadata"}


MESSAGE = {"text": "在吗"}
REQUEST_FORMS = [
    {"text": "在吗"},
    {"text": "在吗", "id": "m1", "context": {"turn": 2}, "metadata": {"channel": "app"}},
    {"text": "在吗", "messages": None},
    {"messages": [MESSAGE]},
    {"messages": [MESSAGE], "text": None, "id": None, "context": None, "metadata": None},
    {"messages": [MESSAGE], "text": "在吗"},
    {"messages": [MESSAGE], "id": "m1"},
    {"messages": [MESSAGE], "context": {"turn": 2}},
    {"messages": [MESSAGE], "metadata": {"channel": "app"}},
    {},
    {"id": "m1"},
    {"text": None},
    {"messages": None},
    {"text": None, "messages": None},
]


@pytest.mark.parametrize("body", REQUEST_FORMS, ids=json.dumps)
def test_the_schema_accepts_a_request_form_exactly_when_the_server_does(
    openapi, admin_client, body
):
    jsonschema = pytest.importorskip("jsonschema")
    # OpenAPI 3.1's schemas are JSON Schema 2020-12; the document is the root of their $refs
    validator = jsonschema.Draft202012Validator(
        openapi | {"$ref": "#/components/schemas/ClassifyRequest"}
    )
    answer = admin_client.post("/v1/classify", json=body)
    assert answer.status_code in (200, 422), answer.text
    assert validator.is_valid(body) is (answer.status_code == 200), answer.text
