"""Property-based fuzzing of POST /v1/classify: no input, however odd, gets a 5xx."""

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.serving import isolated_settings

from kefu.serving.server.app import create_app

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text, lone surrogates and control characters included; short, so each example is quick.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text
any_json = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
context = st.fixed_dictionaries(
    {},
    optional={
        "turn": st.integers(-3, 10) | any_json,
        "previous_intents": st.lists(
            st.sampled_from(["complaint", "greeting", "bogus"]) | any_json, max_size=3
        ),
    },
)
# Metadata is echoed back: odd keys and values, and nesting far deeper than any encoder goes.
deep = st.integers(1, 400).map(lambda depth: json.loads("[" * depth + "]" * depth))
metadata = st.dictionaries(any_text, any_json | deep, max_size=3) | any_json
message = st.fixed_dictionaries(
    {},
    optional={
        "id": any_text | any_json,
        "text": any_text | any_json,
        "context": context | any_json,
        "metadata": metadata,
    },
)
request = st.fixed_dictionaries(
    {},
    optional={
        "text": any_text | any_json,
        "id": any_text,
        "context": context,
        "metadata": metadata,
        "messages": st.lists(message, max_size=5) | any_json,
    },
)

# Close to valid: the right shape with odd texts, contexts and sizes, so 200s are fuzzed too.
plausible = st.fixed_dictionaries(
    {"text": any_text}, optional={"context": context, "metadata": metadata}
) | st.fixed_dictionaries(
    {
        "messages": st.lists(
            st.fixed_dictionaries(
                {"text": any_text}, optional={"context": context, "metadata": metadata}
            ),
            max_size=6,
        )
    }
)


@pytest.fixture(scope="module")
def client(tiny_bundle):
    app = create_app(isolated_settings(tiny_bundle, max_batch=4, queue_size=64, max_text_chars=30))
    with TestClient(app) as test_client:
        yield test_client


STATUSES: set[int] = set()


def check(response):
    STATUSES.add(response.status_code)
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code >= 400:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "field"}
        assert body["error"]["message"]
    else:
        assert len(body["results"]) >= 1


@FUZZ
@given(body=request | plausible)
def test_structured_requests_never_get_a_5xx(client, body):
    check(
        client.post(
            "/v1/classify",
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
    )


@FUZZ
@given(body=any_json)
def test_any_json_never_gets_a_5xx(client, body):
    check(
        client.post(
            "/v1/classify",
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
    )


@FUZZ
@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_any_bytes_never_get_a_5xx(client, raw, content_type):
    headers = {"content-type": content_type} if content_type else {}
    check(client.post("/v1/classify", content=raw, headers=headers))


def test_fuzzing_reached_both_answers_and_errors():
    assert 200 in STATUSES and 422 in STATUSES and 400 in STATUSES
