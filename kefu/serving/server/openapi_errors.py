"""The error answers each endpoint documents in /openapi.json, with the codes a client may
branch on per status (`response_schemas.ErrorBody` is their shape; README "Errors" lists them
all). Kept apart from the routes so `app.py` reads as the endpoints alone.
"""

from __future__ import annotations

from typing import Any

from kefu.serving.server.response_schemas import ErrorBody

# The headers answers carry, declared so that a generated client can read them and a schema
# check can hold the server to them. Every answer of the app has X-Request-ID (the middleware
# adds it); the connection layer's answers (400, 408, 431, 503 on any path) come before any request
# id exists, so on those statuses it is declared but not promised.
_REQUEST_ID_DESCRIPTION = (
    "The request's id, quoted in the access log: the caller's own X-Request-ID when it is 1 to "
    "128 characters of A-Za-z0-9._:-, else one made by the server."
)
REQUEST_ID: dict[str, Any] = {
    "X-Request-ID": {
        "description": _REQUEST_ID_DESCRIPTION,
        "required": True,
        "schema": {"type": "string"},
    }
}
_REQUEST_ID_UNLESS_CONNECTION_LAYER: dict[str, Any] = {
    "X-Request-ID": {
        "description": _REQUEST_ID_DESCRIPTION + " Absent on the connection layer's answers.",
        "required": False,
        "schema": {"type": "string"},
    }
}
RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (KEFU_RETRY_AFTER_SECONDS).",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
_CONNECTION_LAYER_STATUSES = (400, 408, 431, 503)
# The successful answer of every endpoint: FastAPI merges this into the 200 it declares.
OK: dict[int | str, dict[str, Any]] = {200: {"headers": REQUEST_ID}}


def _headers(status: int) -> dict[str, Any]:
    request_id = (
        _REQUEST_ID_UNLESS_CONNECTION_LAYER if status in _CONNECTION_LAYER_STATUSES else REQUEST_ID
    )
    return request_id | RETRY_AFTER if status == 503 else request_id


# The codes a client may branch on, per status, as /docs shows them. invalid_http, head_timeout
# and concurrency_limit are written by the HTTP protocol (protocol.py) before any route, on
# any path: the API description (CONNECTION_ERRORS) names them once for every endpoint.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description, "headers": _headers(status)}
    for status, description in {
        400: "`invalid_json`: the body is not valid JSON, or not UTF-8. `invalid_http` (from "
        "the connection layer, not this route): the bytes are not HTTP/1.1, or a request with "
        "a body asks to switch protocols (Upgrade).",
        401: "`unauthorized`: missing or wrong X-API-Key (X-Admin-Token on admin endpoints).",
        408: "`body_timeout`: the body did not arrive within KEFU_BODY_TIMEOUT_SECONDS. "
        "`head_timeout` (from the connection layer, not this route): the request head did not "
        "arrive within KEFU_HEAD_TIMEOUT_SECONDS.",
        413: "`too_many_messages` or `body_too_large`.",
        415: "`unsupported_media_type`: the body is not sent as application/json, or is "
        "compressed (a Content-Encoding, or a Transfer-Encoding coding besides chunked).",
        422: "A field is missing, of the wrong type, empty or too long (`missing_field`, "
        "`invalid_type`, `empty_text`, `text_too_long`, ...).",
        431: "`head_too_large` (from the connection layer, not this route): the request line "
        "and header fields are over 64 KB.",
        503: "`overloaded` or `not_ready`; `concurrency_limit` (from the connection layer, not "
        "this route): over KEFU_LIMIT_CONCURRENCY. Retry after Retry-After seconds.",
    }.items()
}
# /v1/admin/reload's own answers: its body names a bundle and a variant, not messages, and a
# bundle or policy that cannot be served is the caller's to fix (the old model keeps serving).
RELOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: ERRORS[400],
    401: ERRORS[401],
    403: {
        "model": ErrorBody,
        "headers": _headers(403),
        "description": "`forbidden`: admin endpoints are disabled (KEFU_ADMIN_TOKEN is not set).",
    },
    408: ERRORS[408],
    409: {
        "model": ErrorBody,
        "headers": _headers(409),
        "description": "`reload_unsupported`: the server runs more than one worker process.",
    },
    413: {
        "model": ErrorBody,
        "description": "`body_too_large`: over KEFU_MAX_BODY_BYTES.",
        "headers": _headers(413),
    },
    415: ERRORS[415],
    422: {
        "model": ErrorBody,
        "headers": _headers(422),
        "description": "The reload was refused and the old model keeps serving. "
        "`bundle_invalid` (`field` bundle): the directory is missing, is not a kefu bundle, was "
        "changed after export or cannot be loaded (`field` variant: it has no model of the "
        "variant asked for); `policy_invalid` (`field` policy): the "
        "routing policy does not fit the new bundle; `invalid_input` (`field` variant): the "
        "variant is neither fp32 nor int8. Or the body is not a reload request: "
        "`unknown_field`, `invalid_type` (a value is not a string, or the body not a JSON "
        "object), `too_long` (a bundle path over 4,096 characters), `invalid_text` (a lone "
        "UTF-16 surrogate).",
        "content": {
            "application/json": {
                "examples": {
                    "bundle_invalid": {
                        "summary": "the bundle cannot be served",
                        "value": {
                            "error": {
                                "code": "bundle_invalid",
                                "message": "/srv/kefu/models/new is not a kefu bundle: "
                                "manifest.json is missing; set the request's bundle to a "
                                "bundle directory on the server, or leave bundle out to "
                                "reload the current one",
                                "field": "bundle",
                            }
                        },
                    },
                    "invalid_input": {
                        "summary": "an unknown variant",
                        "value": {
                            "error": {
                                "code": "invalid_input",
                                "message": "unknown model variant 'int4'; expected one of "
                                "['fp32', 'int8']",
                                "field": "variant",
                            }
                        },
                    },
                }
            }
        },
    },
    431: ERRORS[431],
    503: {
        "model": ErrorBody,
        "headers": _headers(503),
        "description": "`not_ready`: no model is serving yet, or the server is shutting down; "
        "`concurrency_limit` (from the connection layer, not this route): over "
        "KEFU_LIMIT_CONCURRENCY. Retry after Retry-After seconds.",
    },
}
CONNECTION_ERRORS = (
    'Every error is `{"error": {"code", "message", "field"}}` with a `code` to '
    "branch on. Four codes come from the connection layer, before any route, so any path may "
    "answer them and the connection is closed after each: 400 `invalid_http` (the bytes are "
    "not HTTP/1.1, or a request with a body asks to switch protocols with Upgrade), 408 "
    "`head_timeout` (the request head did not arrive within KEFU_HEAD_TIMEOUT_SECONDS), 431 "
    "`head_too_large` (the request line and header fields are over 64 KB) and 503 "
    "`concurrency_limit` (over KEFU_LIMIT_CONCURRENCY; retry after Retry-After seconds)."
)
