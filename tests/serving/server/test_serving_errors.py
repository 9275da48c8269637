"""Every client error of POST /v1/classify: exact status and exact error body, never a 500."""

import json

import pytest
from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.serving.server.app import create_app
from kefu.serving.server.error_responses import ECHO_CHARS, shown

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(tiny_bundle):
    with TestClient(create_app(isolated_settings(tiny_bundle))) as test_client:
        yield test_client


def error(code, message, field=None):
    return {"error": {"code": code, "message": message, "field": field}}


FAMILY = "👨\u200d👩\u200d👧"  # one character on screen; its repr escapes the joiners
FAMILY_SHOWN = "👨\\u200d👩\\u200d👧"
LOW_SURROGATE_SHOWN = "\\udc80"  # a lone surrogate spelt out, as an answer must
ALLOWED_ONE_OR_OTHER = "request needs 'text' (one message) or 'messages' (a batch)"

CASES = [
    (
        "invalid JSON",
        b'{"text": ',
        400,
        error("invalid_json", "request body is not valid JSON: Expecting value (character 9)"),
    ),
    (
        "UTF-16 with a byte-order mark",
        '{"text": "在吗"}'.encode("utf-16"),
        400,
        error(
            "invalid_json",
            "request body is not UTF-8 (it looks like UTF-16 or UTF-32); send UTF-8 JSON",
        ),
    ),
    (
        "UTF-16 without a byte-order mark",
        '{"text": "在吗"}'.encode("utf-16-le"),
        400,
        error(
            "invalid_json",
            "request body is not UTF-8 (it looks like UTF-16 or UTF-32); send UTF-8 JSON",
        ),
    ),
    (
        "GBK bytes",
        '{"text": "在吗"}'.encode("gbk"),
        400,
        error(
            "invalid_json",
            "request body could not be read as JSON: not UTF-8, nested too deeply, "
            "or a number too long",
        ),
    ),
    (
        "empty body",
        b"",
        422,
        error("missing_body", 'request body is empty; send a JSON object such as {"text": "..."}'),
    ),
    ("JSON array", b"[]", 422, error("invalid_type", "request body must be a JSON object")),
    ("JSON string", b'"hello"', 422, error("invalid_type", "request body must be a JSON object")),
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
        "id with a lone surrogate",
        b'{"text": "a", "id": "\\ud800"}',
        422,
        error("invalid_text", "id contains a lone UTF-16 surrogate; send valid UTF-8 text", "id"),
    ),
    (
        "metadata value with a lone surrogate",
        b'{"text": "a", "metadata": {"shop": ["ok", "x\\udc80"]}}',
        422,
        error(
            "invalid_text",
            "metadata.shop[1] contains a lone surrogate '\\udc80' at position 1; "
            "send valid UTF-8 text",
            "metadata.shop[1]",
        ),
    ),
    (
        "metadata key with a lone surrogate",
        b'{"messages": [{"text": "a", "metadata": {"\\ud800": 1}}]}',
        422,
        error(
            "invalid_text",
            "messages[0].metadata.\\ud800 contains a lone surrogate '\\ud800' at position 0; "
            "send valid UTF-8 text",
            "messages[0].metadata.\\ud800",
        ),
    ),
    (
        "metadata nested too deep",
        b'{"text": "a", "metadata": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}",
        422,
        error(
            "metadata_too_deep",
            # the path is input too: 64 characters of it, then "…"
            "metadata is nested more than 32 levels deep (at metadata.a"
            + "[0]" * 18
            + "…); keep ids and references there, not documents",
            "metadata",
        ),
    ),
    (
        "a long metadata path cut as a whole, not key by key",
        json.dumps(
            {"messages": [{"text": "a", "metadata": {"k" * 40: {"v" * 40: "x\udc80"}}}]}
        ).encode(),
        422,
        error(
            "invalid_text",
            f"messages[0].metadata.{'k' * 40}.{'v' * 2}… contains a lone surrogate "
            "'\\udc80' at position 1; send valid UTF-8 text",
            f"messages[0].metadata.{'k' * 40}.{'v' * 2}…",
        ),
    ),
    (
        "two messages with one id",
        b'{"messages": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}]}',
        422,
        error(
            "duplicate_id",
            "messages[2].id is 'a', the id of messages[0].id too (a message without an id is "
            "answered under its position); give each message its own id",
            "messages[2].id",
        ),
    ),
    (
        "an id equal to another message's position",
        b'{"messages": [{"id": "1", "text": "x"}, {"text": "y"}]}',
        422,
        error(
            "duplicate_id",
            "messages[1].id is '1', the id of messages[0].id too (a message without an id is "
            "answered under its position); give each message its own id",
            "messages[1].id",
        ),
    ),
    (
        "a long id cut between whole characters and escapes",
        json.dumps(
            {"messages": [{"id": FAMILY * 10, "text": "x"}, {"id": FAMILY * 10, "text": "y"}]},
            ensure_ascii=False,
        ).encode(),
        422,
        error(
            "duplicate_id",
            # 1 + 4 x 15 characters of repr: a fifth family would pass 64, and a plain cut
            # stopped inside its first joiner's escape ("\u")
            f"messages[1].id is '{FAMILY_SHOWN * 4}…, the id of messages[0].id too (a message "
            "without an id is answered under its position); give each message its own id",
            "messages[1].id",
        ),
    ),
    (
        "a long metadata key of lone surrogates cut between whole escapes",
        json.dumps({"messages": [{"text": "a", "metadata": {"\udc80" * 20: 1}}]}).encode(),
        422,
        error(
            "invalid_text",
            # the path as a whole: 21 characters of names, 7 whole escapes, then "…"
            f"messages[0].metadata.{LOW_SURROGATE_SHOWN * 7}… contains a lone surrogate "
            "'\\udc80' at position 0; send valid UTF-8 text",
            f"messages[0].metadata.{LOW_SURROGATE_SHOWN * 7}…",
        ),
    ),
    (
        "a long unknown field cut between whole characters",
        json.dumps({"text": "a", "k" * 63 + "👍🏽" * 2: 1}, ensure_ascii=False).encode(),
        422,
        error(
            "unknown_field",
            f"unknown field {'k' * 63}…; check the spelling against the API docs at /docs",
            f"{'k' * 63}…",  # not the hand without its skin tone
        ),
    ),
    (
        "JSON nested deeper than the parser goes",
        b'{"text": "a", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        400,
        error(
            "invalid_json",
            "request body could not be read as JSON: not UTF-8, nested too deeply, "
            "or a number too long",
        ),
    ),
    (
        "misspelt field",
        b'{"txt": "x"}',
        422,
        error(
            "unknown_field",
            "unknown field txt; check the spelling against the API docs at /docs",
            "txt",
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
    (
        "id of wrong type",
        b'{"messages": [{"id": 7, "text": "a"}]}',
        422,
        error("invalid_type", "messages[0].id: Input should be a valid string", "messages[0].id"),
    ),
    (
        "id too long",
        json.dumps({"text": "a", "id": "x" * 257}).encode(),
        422,
        error("too_long", "id: String should have at most 256 characters", "id"),
    ),
    (
        "turn zero",
        b'{"messages": [{"text": "a", "context": {"turn": 0}}]}',
        422,
        error(
            "out_of_range",
            "messages[0].context.turn: Input should be greater than or equal to 1",
            "messages[0].context.turn",
        ),
    ),
    (
        "turn as a string",
        b'{"text": "a", "context": {"turn": "3"}}',
        422,
        error("invalid_type", "context.turn: Input should be a valid integer", "context.turn"),
    ),
    (
        "previous intent not a string",
        b'{"text": "a", "context": {"previous_intents": [1]}}',
        422,
        error(
            "invalid_type",
            "context.previous_intents[0]: Input should be a valid string",
            "context.previous_intents[0]",
        ),
    ),
    (
        "previous intent unknown",
        b'{"messages": [{"text": "a", "context": {"previous_intents": ["refund"]}}]}',
        422,
        error(
            "unknown_intent",
            "messages[0].context.previous_intents[0] is 'refund', not an intent id; "
            "the ids are listed at GET /v1/model",
            "messages[0].context.previous_intents[0]",
        ),
    ),
    (
        "unknown context field",
        b'{"text": "a", "context": {"turns": 3}}',
        422,
        error(
            "unknown_field",
            "unknown field context.turns; check the spelling against the API docs at /docs",
            "context.turns",
        ),
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "expected"), CASES, ids=[c[0] for c in CASES])
def test_client_error(client, case, body, status, expected):
    response = client.post("/v1/classify", content=body, headers=JSON)
    assert (response.status_code, response.json()) == (status, expected)


@pytest.mark.parametrize(
    "keys",
    [
        ["k" * 30, "v" * 30, "w" * 30],
        ["k" * 900, "v"],
        ["a" * 40, FAMILY * 10],
        ["e\u0301" * 20, "v" * 40],
        ["", "", "x" * 60, ""],
    ],
    ids=["three keys", "a long key", "emoji at the cut", "accents", "empty keys"],
)
def test_a_metadata_path_is_quoted_whole_within_the_echo_limit(client, keys):
    """However its keys add up, the path quoted is the path spelt out, cut as any echo."""
    metadata = value = {}
    for key in keys[:-1]:
        value[key] = value = {}
    value[keys[-1]] = "x\udc80"
    body = {"messages": [{"text": "a", "metadata": metadata}]}
    response = client.post("/v1/classify", content=json.dumps(body).encode(), headers=JSON)
    path = "messages[0].metadata" + "".join(
        "." + key.encode("utf-8", "backslashreplace").decode() for key in keys
    )
    quoted = shown(path, escaped=True)
    assert len(quoted) <= ECHO_CHARS + 1
    assert response.json() == error(
        "invalid_text",
        f"{quoted} contains a lone surrogate '\\udc80' at position 1; send valid UTF-8 text",
        quoted,
    )


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


TOO_LARGE = error(
    "body_too_large",
    "request body is larger than 1048576 bytes (KEFU_MAX_BODY_BYTES); send fewer or shorter messages per request",
)


def test_body_over_max_body_bytes(client):
    body = json.dumps({"text": "a" * (1 << 20)}).encode()
    response = client.post("/v1/classify", content=body, headers=JSON)
    assert (response.status_code, response.json()) == (413, TOO_LARGE)


def test_chunked_body_over_max_body_bytes(client):
    def chunks():
        yield b'{"text": "'
        for _ in range(120):
            yield b"a" * 10_000
        yield b'"}'

    response = client.post("/v1/classify", content=chunks(), headers=JSON)
    assert (response.status_code, response.json()) == (413, TOO_LARGE)


def body_of(size):
    """A JSON body of exactly `size` bytes: one short message padded with white space."""
    body = '{"text": "在吗"}'.encode()
    return body + b" " * (size - len(body))


def test_a_body_of_exactly_max_body_bytes_is_read(client):
    at_limit = client.post("/v1/classify", content=body_of(1 << 20), headers=JSON)
    assert at_limit.status_code == 200, at_limit.text
    over = client.post("/v1/classify", content=body_of((1 << 20) + 1), headers=JSON)
    assert (over.status_code, over.json()) == (413, TOO_LARGE)


def test_a_chunked_body_of_exactly_max_body_bytes_is_read(client):
    def chunks(size):
        body = body_of(size)
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    at_limit = client.post("/v1/classify", content=chunks(1 << 20), headers=JSON)
    assert at_limit.status_code == 200, at_limit.text
    over = client.post("/v1/classify", content=chunks((1 << 20) + 1), headers=JSON)
    assert (over.status_code, over.json()) == (413, TOO_LARGE)


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}],
)
def test_body_not_sent_as_json(client, headers):
    response = client.post("/v1/classify", content=b'{"text": "a"}', headers=headers)
    assert response.status_code == 415
    assert response.json() == error(
        "unsupported_media_type", "send the body as JSON with Content-Type: application/json"
    )


def test_charset_parameter_is_accepted(client):
    response = client.post(
        "/v1/classify",
        content='{"text": "在吗"}'.encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_unknown_path_and_wrong_method(client):
    missing = client.get("/v1/classfy")
    assert (missing.status_code, missing.json()) == (
        404,
        error("not_found", "no endpoint at /v1/classfy; see /docs"),
    )
    wrong = client.get("/v1/classify")
    assert (wrong.status_code, wrong.json()) == (
        405,
        error("method_not_allowed", "GET is not allowed on /v1/classify"),
    )


def test_compressed_body(client):
    import gzip

    response = client.post(
        "/v1/classify",
        content=gzip.compress(b'{"text": "a"}'),
        headers=JSON | {"content-encoding": "gzip"},
    )
    assert (response.status_code, response.json()) == (
        415,
        error(
            "unsupported_media_type",
            "request body is compressed (Content-Encoding: gzip); send it uncompressed as "
            "UTF-8 JSON",
        ),
    )
    plain = client.post(
        "/v1/classify", content=b'{"text": "a"}', headers=JSON | {"content-encoding": "identity"}
    )
    assert plain.status_code == 200


def test_ids_are_answered_distinct(client):
    response = client.post(
        "/v1/classify", json={"messages": [{"id": "m1", "text": "退款"}, {"text": "转人工"}]}
    )
    assert [result["id"] for result in response.json()["results"]] == ["m1", "1"]
