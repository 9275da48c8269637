"""The error codes as /openapi.json documents them: the codes the connection layer answers
before any route (invalid_http, head_timeout, head_too_large, concurrency_limit) are where a client reads the
API's errors, said to come from there, next to each status's route codes."""

import re

import pytest
from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.serving.server.app import create_app

CONNECTION_CODES = {
    "invalid_http": "400",
    "head_timeout": "408",
    "head_too_large": "431",
    "concurrency_limit": "503",
}


@pytest.fixture(scope="module")
def openapi(tiny_bundle):
    with TestClient(create_app(isolated_settings(tiny_bundle))) as client:
        return client.get("/openapi.json").json()


def test_the_api_description_names_each_connection_layer_code_with_its_status(openapi):
    description = openapi["info"]["description"]
    assert "connection layer, before any route" in description
    for code, status in CONNECTION_CODES.items():
        assert f"{status} `{code}`" in description, code


def test_classify_lists_each_connection_layer_code_under_its_status(openapi):
    responses = openapi["paths"]["/v1/classify"]["post"]["responses"]
    for code, status in CONNECTION_CODES.items():
        text = responses[status]["description"]
        assert f"`{code}` (from the connection layer, not this route)" in text, text
    assert "`invalid_json`" in responses["400"]["description"]
    assert "`body_timeout`" in responses["408"]["description"]
    assert re.search(r"`overloaded` or `not_ready`", responses["503"]["description"])


def test_the_error_body_schema_explains_its_code(openapi):
    detail = openapi["components"]["schemas"]["ErrorDetail"]["properties"]
    for code in CONNECTION_CODES:
        assert f"`{code}`" in detail["code"]["description"]


# What a reload can answer 422 with: the bundle, the policy or the variant cannot be served, or
# the body is not a reload request.
RELOAD_CODES = (
    "bundle_invalid",
    "policy_invalid",
    "invalid_input",
    "unknown_field",
    "invalid_type",
    "too_long",
    "invalid_text",
)


@pytest.fixture(scope="module")
def admin_client(tiny_bundle):
    with TestClient(create_app(isolated_settings(tiny_bundle, admin_token="admin"))) as client:
        yield client


def test_reload_documents_its_own_422_codes_not_classifys(admin_client):
    paths = admin_client.get("/openapi.json").json()["paths"]
    reload_422 = paths["/v1/admin/reload"]["post"]["responses"]["422"]
    classify_422 = paths["/v1/classify"]["post"]["responses"]["422"]
    assert reload_422["description"] != classify_422["description"]
    for code in RELOAD_CODES:
        assert f"`{code}`" in reload_422["description"], code
    for code in ("empty_text", "text_too_long", "missing_field"):  # classify's, not reload's
        assert f"`{code}`" not in reload_422["description"], code
    assert "old model keeps serving" in reload_422["description"]


def test_reload_422_examples_are_the_answers_a_reload_gets(admin_client, tmp_path):
    reload = admin_client.get("/openapi.json").json()["paths"]["/v1/admin/reload"]["post"]
    examples = reload["responses"]["422"]["content"]["application/json"]["examples"]
    assert set(examples) == {"bundle_invalid", "invalid_input"}
    headers = {"X-Admin-Token": "admin"}
    unknown_variant = admin_client.post(
        "/v1/admin/reload", json={"variant": "int4"}, headers=headers
    )
    assert unknown_variant.status_code == 422
    assert unknown_variant.json() == examples["invalid_input"]["value"]
    not_a_bundle = admin_client.post(
        "/v1/admin/reload", json={"bundle": str(tmp_path)}, headers=headers
    )
    documented = examples["bundle_invalid"]["value"]["error"]
    answered = not_a_bundle.json()["error"]
    assert not_a_bundle.status_code == 422
    assert (answered["code"], answered["field"]) == (documented["code"], documented["field"])
    # the same message, about another directory
    assert answered["message"].replace(str(tmp_path), "DIR") == documented["message"].replace(
        "/srv/kefu/models/new", "DIR"
    )


def test_reload_names_the_code_of_each_status_it_documents(admin_client):
    responses = admin_client.get("/openapi.json").json()["paths"]["/v1/admin/reload"]["post"][
        "responses"
    ]
    assert set(responses) == {
        *("200", "400", "401", "403", "408", "409", "413", "415", "422", "431", "503")
    }
    for status, code in {
        "403": "forbidden",
        "409": "reload_unsupported",
        "413": "body_too_large",
        "503": "not_ready",
    }.items():
        assert f"`{code}`" in responses[status]["description"], status
    assert "too_many_messages" not in responses["413"]["description"]
    assert "overloaded" not in responses["503"]["description"]
