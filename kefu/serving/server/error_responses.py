"""The one place that turns errors into HTTP responses: `{"error": {"code", "message", "field"}}`.

Three handlers: kefu's own errors (each carries its `http_status`, see `kefu/errors.py`),
FastAPI's request validation, and Starlette's routing errors (404, 405, unreadable body).
Client mistakes are 4xx with a code a program can branch on, a message a person can act on and
the JSON path of the offending field; 503 carries Retry-After; a 500 only ever means a bug in
kefu (the last-resort middleware), never bad input. Whatever of the request is echoed (field
names, paths, values) is cut to `ECHO_CHARS` characters, so a 1 MB key cannot make a 2 MB answer;
the cut falls between whole characters and escapes and is marked with "…" (`kefu.serving.preview`).
"""

from __future__ import annotations

import email.message
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from kefu.errors import KefuError
from kefu.serving.preview import ELLIPSIS, cut
from kefu.serving.server.docs import DocsAssets

ECHO_CHARS = 64  # longest piece of the caller's input quoted back in an error, before its "…"


def shown(value: object, *, escaped: bool = False) -> str:
    """`value` as echoed in an error: at most ECHO_CHARS characters, then "…" where it was cut,
    never inside a character (an emoji sequence, a letter and its accent) nor, when `escaped`
    (a repr, or text whose lone surrogates are spelt as `\\udc80`), inside an escape."""
    text = value if isinstance(value, str) else str(value)
    return cut(text, ECHO_CHARS + len(ELLIPSIS), escaped=escaped)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def kefu_error_response(exc: KefuError, retry_after_seconds: int) -> JSONResponse:
    """The response for one of kefu's errors, inside FastAPI or in a middleware before it."""
    headers = {"Retry-After": str(retry_after_seconds)} if exc.http_status == 503 else None
    if exc.http_status == 408:
        headers = {"Connection": "close"}  # the rest of a stalled body is not worth waiting for
    return error_response(exc.http_status, exc.code, str(exc), exc.field, headers)


# pydantic error types -> our codes; anything else keeps pydantic's type as its code.
_VALIDATION_CODES = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "string_type": "invalid_type",
    "int_type": "invalid_type",
    "list_type": "invalid_type",
    "model_type": "invalid_type",
    "model_attributes_type": "invalid_type",
    "dict_type": "invalid_type",
    "greater_than_equal": "out_of_range",
    "too_long": "too_long",
    "string_too_long": "too_long",
    "string_unicode": "invalid_text",  # a lone surrogate where a constrained string is expected
}


def field_path(loc: tuple[Any, ...]) -> str | None:
    """('messages', 2, 'text') -> 'messages[2].text' (cut to ECHO_CHARS: keys are input too)."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return shown(path) if path else None


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """The first problem of a request FastAPI could not parse or validate."""
    error = exc.errors()[0]
    kind, loc = error["type"], tuple(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    if kind == "json_invalid":
        where = f" (character {loc[1]})" if len(loc) > 1 else ""
        return error_response(
            400,
            "invalid_json",
            f"request body is not valid JSON: {ctx.get('error', 'decode error')}{where}",
        )
    if loc and loc[0] == "body":
        loc = loc[1:]
    if not loc and kind == "missing":
        return error_response(
            422, "missing_body", 'request body is empty; send a JSON object such as {"text": "..."}'
        )
    if not loc and isinstance(error.get("input"), bytes | bytearray):
        return error_response(
            415,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
    if not loc and kind == "model_attributes_type":
        return error_response(422, "invalid_type", "request body must be a JSON object")
    field = ctx.get("field") or field_path(loc)
    message = str(error["msg"])
    if kind == "missing" and not ctx.get("field"):
        message = f"{field} is required"
    elif kind == "string_unicode":
        where = f"{field} contains" if field else "the body contains"
        message = f"{where} a lone UTF-16 surrogate; send valid UTF-8 text"
    elif kind == "extra_forbidden":
        message = f"unknown field {field}; check the spelling against the API docs at /docs"
    elif field and not ctx.get("field"):
        message = f"{field}: {message}"
    return error_response(422, _VALIDATION_CODES.get(kind, kind), message, field)


def unreadable_json(cause: BaseException | None, content_type: str | None) -> str:
    """Why the JSON parser gave up on a body other than for its syntax (`cause`, what it
    raised): bytes that are not UTF-8, named with the charset the Content-Type declares when
    that is another (a GBK client says charset=gbk), nesting deeper than the parser goes, or a
    number longer than Python converts."""
    if isinstance(cause, UnicodeDecodeError):
        message = (
            f"request body is not UTF-8: byte 0x{cause.object[cause.start]:02x} at position "
            f"{cause.start} ({cause.reason})"
        )
        charset = declared_charset(content_type)
        if charset is not None and charset.lower().replace("-", "") != "utf8":
            message += f"; the Content-Type says charset={shown(charset)}, but JSON is UTF-8 only"
        return message + "; send the JSON encoded as UTF-8"
    if isinstance(cause, RecursionError):
        return "request body is JSON nested deeper than the parser goes; send flatter JSON"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return (
            f"request body holds a number of more than {sys.get_int_max_str_digits()} digits, "
            "more than the parser converts; send it as a string"
        )
    return "request body could not be read as JSON"


def declared_charset(content_type: str | None) -> str | None:
    """The `charset` parameter of a Content-Type header, if it has one."""
    if content_type is None:
        return None
    header = email.message.Message()
    header["content-type"] = content_type
    charset = header.get_param("charset")
    return charset if isinstance(charset, str) else None


def _path_without_slash(request: Request) -> str | None:
    """The request's path without its trailing slashes, when an endpoint is there."""
    path = request.url.path
    trimmed = path.rstrip("/")
    if not trimmed or trimmed == path:
        return None
    # routed from the app's root again: a request refused inside a mount carries its root_path
    root_path = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    scope = {**request.scope, "path": trimmed, "root_path": root_path}
    for route in request.app.router.routes:
        match, child_scope = route.matches(scope)
        if match is not Match.NONE and _answers(route, scope | child_scope):
            return trimmed
    return None


def _answers(route: BaseRoute, scope: Scope) -> bool:
    """Whether a route matching `scope` answers it: the docs' mount only where a file is."""
    mounted = getattr(route, "app", None)
    return not isinstance(mounted, DocsAssets) or mounted.has_file(scope)


def allowing_head(headers: dict[str, str] | None) -> dict[str, str] | None:
    """A 405's `Allow` with HEAD wherever it names GET: every GET path answers HEAD too, from a
    route of its own (`head_routes.py`), and the GET route that refused names only itself."""
    allowed = (headers or {}).get("Allow", "").split(", ")
    if headers is None or "GET" not in allowed or "HEAD" in allowed:
        return headers
    return headers | {"Allow": ", ".join([*allowed, "HEAD"])}


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    async def on_kefu_error(request: Request, exc: KefuError) -> JSONResponse:
        return kefu_error_response(exc, retry_after_seconds)

    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc)

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, f"http_{exc.status_code}"
        )
        message = str(exc.detail)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 400:  # what json.loads raised on was not a syntax error
            message = unreadable_json(exc.__cause__, request.headers.get("content-type"))
        elif exc.status_code == 404:
            message = f"no endpoint at {shown(request.url.path)}; see /docs"
            if (without_slash := _path_without_slash(request)) is not None:
                message = (
                    f"no endpoint at {shown(request.url.path)}; the endpoint is "
                    f"{shown(without_slash)}, without the trailing slash"
                )
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {shown(request.url.path)}"
            headers = allowing_head(headers)
        return error_response(exc.status_code, code, message, headers=headers)

    app.add_exception_handler(KefuError, on_kefu_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
