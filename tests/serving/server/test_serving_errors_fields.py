"""Client errors of POST /v1/classify about ids, metadata, context and unknown fields: exact
status and exact error body, with the value or path quoted cut between whole characters."""

import json

import pytest
from support.serving import JSON, error

from kefu.serving.server.error_responses import ECHO_CHARS, shown

FAMILY = "👨\u200d👩\u200d👧"  # one character on screen; its repr escapes the joiners
FAMILY_SHOWN = "👨\\u200d👩\\u200d👧"
LOW_SURROGATE_SHOWN = "\\udc80"  # a lone surrogate spelt out, as an answer must

CASES = [
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
        "a top-level key with a lone surrogate",
        b'{"\\ud800": 1}',
        422,
        error("invalid_text", "the body contains a lone UTF-16 surrogate; send valid UTF-8 text"),
    ),
    (
        "metadata not an object",
        b'{"messages": [{"text": "a", "metadata": [1]}]}',
        422,
        error(
            "invalid_type",
            "messages[0].metadata: Input should be a valid dictionary",
            "messages[0].metadata",
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


def test_ids_are_answered_distinct(client):
    response = client.post(
        "/v1/classify", json={"messages": [{"id": "m1", "text": "退款"}, {"text": "转人工"}]}
    )
    assert [result["id"] for result in response.json()["results"]] == ["m1", "1"]
