"""The error codes as /openapi.json documents them: the codes the connection layer answers
before any route (invalid_http, head_timeout, concurrency_limit) are where a client reads the
API's errors, said to come from there, next to each status's route codes."""

import re

import pytest
from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.serving.server.app import create_app

CONNECTION_CODES = {"invalid_http": "400", "head_timeout": "408", "concurrency_limit": "503"}


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
