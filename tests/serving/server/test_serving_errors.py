"""Client errors of POST /v1/classify about the body as a whole (not JSON, not UTF-8, empty,
too large, not sent as JSON, compressed) and about the path: exact status and exact error body."""

import gzip
import json

import pytest
from support.serving import JSON, error

from kefu.errors import Overloaded, RequestTimeout
from kefu.serving.server.error_responses import kefu_error_response

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
            "request body is not UTF-8: byte 0xd4 at position 10 (invalid continuation byte); "
            "send the JSON encoded as UTF-8",
        ),
    ),
    (
        "gzip bytes without Content-Encoding",
        gzip.compress(b'{"text": "a"}'),
        400,
        error(
            "invalid_json",
            "request body is gzip data, not JSON (and no Content-Encoding says so); "
            "send it uncompressed as UTF-8 JSON",
        ),
    ),
    (
        "a number longer than Python converts",
        b'{"text": "a", "context": {"turn": ' + b"9" * 5000 + b"}}",
        400,
        error(
            "invalid_json",
            "request body holds a number of more than 4300 digits, more than the parser "
            "converts; send it as a string",
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
    (
        "JSON nested deeper than the parser goes",
        b'{"text": "a", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        400,
        error(
            "invalid_json",
            "request body is JSON nested deeper than the parser goes; send flatter JSON",
        ),
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "expected"), CASES, ids=[c[0] for c in CASES])
def test_client_error(client, case, body, status, expected):
    response = client.post("/v1/classify", content=body, headers=JSON)
    assert (response.status_code, response.json()) == (status, expected)


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


@pytest.mark.parametrize(("parameter", "charset"), [("gbk", "gbk"), ('"GB18030"', "GB18030")])
def test_a_body_in_the_charset_its_content_type_declares_is_told_json_is_utf_8(
    client, parameter, charset
):
    response = client.post(
        "/v1/classify",
        content='{"text": "在吗"}'.encode("gbk"),
        headers={"content-type": f"application/json; charset={parameter}"},
    )
    assert (response.status_code, response.json()) == (
        400,
        error(
            "invalid_json",
            "request body is not UTF-8: byte 0xd4 at position 10 (invalid continuation byte); "
            f"the Content-Type says charset={charset}, but JSON is UTF-8 only; "
            "send the JSON encoded as UTF-8",
        ),
    )


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


@pytest.mark.parametrize(
    ("header", "value"),
    [("Content-Encoding", "gzip"), ("Transfer-Encoding", "gzip, chunked")],
)
def test_compressed_body(client, header, value):
    response = client.post(
        "/v1/classify",
        content=gzip.compress(b'{"text": "a"}'),
        headers=JSON | {header: value},
    )
    assert (response.status_code, response.json()) == (
        415,
        error(
            "unsupported_media_type",
            f"request body is compressed ({header}: {value}); send it uncompressed as UTF-8 JSON",
        ),
    )
    plain = client.post(
        "/v1/classify", content=b'{"text": "a"}', headers=JSON | {"content-encoding": "identity"}
    )
    assert plain.status_code == 200


def test_a_timeout_closes_the_connection_and_an_overload_says_when_to_retry():
    """Said by the answer itself, not left to the HTTP server: uvicorn closes a connection whose
    body is unread and says so on its own, so a test over the wire cannot tell the two apart."""
    timeout = kefu_error_response(RequestTimeout("the body did not arrive"), retry_after_seconds=2)
    assert (timeout.status_code, timeout.headers["connection"]) == (408, "close")
    assert "retry-after" not in timeout.headers
    overloaded = kefu_error_response(Overloaded("the queue is full"), retry_after_seconds=2)
    assert (overloaded.status_code, overloaded.headers["retry-after"]) == (503, "2")
    assert "connection" not in overloaded.headers
