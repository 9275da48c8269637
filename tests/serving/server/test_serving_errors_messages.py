"""Client errors of POST /v1/classify about the text and the messages of a request (missing,
empty, of the wrong type, too long, too many): exact status and exact error body."""

import json

import pytest
from support.serving import JSON, error

ALLOWED_ONE_OR_OTHER = "request needs 'text' (one message) or 'messages' (a batch)"

CASES = [
    ("empty object", b"{}", 422, error("missing_field", ALLOWED_ONE_OR_OTHER, "text")),
    ("text null", b'{"text": null}', 422, error("missing_field", ALLOWED_ONE_OR_OTHER, "text")),
    (
        "text of wrong type",
        b'{"text": 5}',
        422,
        error("invalid_type", "text: Input should be a valid string", "text"),
    ),
    (
        "text empty",
        b'{"text": ""}',
        422,
        error(
            "empty_text",
            "text is empty or holds only white space, markup or invisible characters; send the customer's message text",
            "text",
        ),
    ),
    (
        "text whitespace only",
        json.dumps({"text": " \n\t\u3000"}).encode(),
        422,
        error(
            "empty_text",
            "text is empty or holds only white space, markup or invisible characters; send the customer's message text",
            "text",
        ),
    ),
    (
        "text with a lone surrogate",
        b'{"text": "a\\ud800"}',
        422,
        error(
            "invalid_text",
            "text: contains a lone surrogate '\\ud800' at position 1; send valid UTF-8 text",
            "text",
        ),
    ),
    (
        "text of invisible characters only",
        json.dumps({"text": "\u200b\x00\ufeff\u00ad"}).encode(),
        422,
        error(
            "empty_text",
            "text is empty or holds only white space, markup or invisible characters; "
            "send the customer's message text",
            "text",
        ),
    ),
    (
        "text of markup only",
        json.dumps({"messages": [{"text": "好的"}, {"text": "<br> <p></p>"}]}).encode(),
        422,
        error(
            "empty_text",
            "messages[1].text is empty or holds only white space, markup or invisible "
            "characters; send the customer's message text",
            "messages[1].text",
        ),
    ),
    (
        "both forms",
        b'{"text": "a", "messages": [{"text": "b"}]}',
        422,
        error(
            "ambiguous_request",
            "send either {'text': ...} for one message or {'messages': [...]} for a batch, not both",
            "messages",
        ),
    ),
    (
        "messages empty",
        b'{"messages": []}',
        422,
        error("empty_messages", "messages is empty; send 1 to 64 messages", "messages"),
    ),
    (
        "messages not a list",
        b'{"messages": "x"}',
        422,
        error("invalid_type", "messages: Input should be a valid list", "messages"),
    ),
    (
        "message not an object",
        b'{"messages": [1]}',
        422,
        error(
            "invalid_type",
            "messages[0]: Input should be a valid dictionary or object to extract fields from",
            "messages[0]",
        ),
    ),
    (
        "message without text",
        b'{"messages": [{"id": "a"}]}',
        422,
        error("missing_field", "messages[0].text is required", "messages[0].text"),
    ),
    (
        "second message blank",
        b'{"messages": [{"text": "ok"}, {"text": "  "}]}',
        422,
        error(
            "empty_text",
            "messages[1].text is empty or holds only white space, markup or invisible characters; send the customer's message text",
            "messages[1].text",
        ),
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "expected"), CASES, ids=[c[0] for c in CASES])
def test_client_error(client, case, body, status, expected):
    response = client.post("/v1/classify", content=body, headers=JSON)
    assert (response.status_code, response.json()) == (status, expected)


def test_text_over_the_hard_cap(client):
    response = client.post(
        "/v1/classify", json={"messages": [{"text": "a"}, {"text": "长" * 20_001}]}
    )
    assert response.status_code == 422
    assert response.json() == error(
        "text_too_long",
        "messages[1].text has 20001 characters; the limit is 20000 (KEFU_MAX_TEXT_CHARS)",
        "messages[1].text",
    )
    blank_and_long = client.post("/v1/classify", json={"text": " " * 20_001})
    assert blank_and_long.json()["error"]["code"] == "text_too_long"  # measured before read
    at_cap = client.post("/v1/classify", json={"text": "长" * 20_000})
    assert at_cap.status_code == 200
    assert at_cap.json()["results"][0]["truncated"] is True


def test_more_messages_than_max_batch(client):
    response = client.post("/v1/classify", json={"messages": [{"text": "在吗"}] * 65})
    assert response.status_code == 413
    assert response.json() == error(
        "too_many_messages",
        "65 messages in one request; the limit is 64 (KEFU_MAX_BATCH); split the batch",
        "messages",
    )
    assert (
        len(
            client.post("/v1/classify", json={"messages": [{"text": "在吗"}] * 64}).json()[
                "results"
            ]
        )
        == 64
    )
