"""The one place that maps errors to HTTP responses: `{"error": {"code", "message", "field"}}`.

One handler per error type. Client mistakes are 4xx with a code a program can branch on, a
message a person can act on and the JSON path of the offending field; a 500 only ever means a
bug in kefu, never bad input.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kefu.errors import BundleError, ConfigError, InputError, KefuError, PolicyError
from kefu.serving.server.microbatch import NotReady, Overloaded


class PayloadTooLarge(InputError):
    """More messages than max_batch, or a body over max_body_bytes (413)."""


class Unauthorized(KefuError):
    """Missing or wrong X-API-Key or X-Admin-Token (401)."""

    code = "unauthorized"


class Forbidden(KefuError):
    """The endpoint is disabled by configuration (403)."""

    code = "forbidden"


class Conflict(KefuError):
    """The request cannot be carried out in the server's current configuration (409)."""

    code = "conflict"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


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
}


def field_path(loc: tuple[Any, ...]) -> str | None:
    """('messages', 2, 'text') -> 'messages[2].text'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


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
    elif kind == "extra_forbidden":
        message = f"unknown field {field}; check the spelling against the API docs at /docs"
    elif field and not ctx.get("field"):
        message = f"{field}: {message}"
    return error_response(422, _VALIDATION_CODES.get(kind, kind), message, field)


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc)

    async def on_too_large(request: Request, exc: PayloadTooLarge) -> JSONResponse:
        return error_response(413, exc.code, str(exc), exc.field)

    async def on_input(request: Request, exc: InputError) -> JSONResponse:
        return error_response(422, exc.code, str(exc), exc.field)

    async def on_overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return error_response(
            503, exc.code, str(exc), headers={"Retry-After": str(retry_after_seconds)}
        )

    async def on_not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return error_response(
            503, exc.code, str(exc), headers={"Retry-After": str(retry_after_seconds)}
        )

    async def on_unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        return error_response(401, exc.code, str(exc), getattr(exc, "field", None))

    async def on_forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return error_response(403, exc.code, str(exc))

    async def on_conflict(request: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, exc.code, str(exc))

    async def on_bundle(request: Request, exc: BundleError) -> JSONResponse:
        return error_response(422, exc.code, str(exc), "bundle")

    async def on_policy(request: Request, exc: PolicyError) -> JSONResponse:
        return error_response(422, exc.code, str(exc), "policy")

    async def on_config(request: Request, exc: ConfigError) -> JSONResponse:
        return error_response(422, exc.code, str(exc))

    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, f"http_{exc.status_code}"
        )
        message = str(exc.detail)
        if exc.status_code == 400:
            message = "request body could not be read as UTF-8 JSON"
        elif exc.status_code == 404:
            message = f"no endpoint at {request.url.path}; see /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(PayloadTooLarge, on_too_large)  # type: ignore[arg-type]
    app.add_exception_handler(InputError, on_input)  # type: ignore[arg-type]
    app.add_exception_handler(Overloaded, on_overloaded)  # type: ignore[arg-type]
    app.add_exception_handler(NotReady, on_not_ready)  # type: ignore[arg-type]
    app.add_exception_handler(Unauthorized, on_unauthorized)  # type: ignore[arg-type]
    app.add_exception_handler(Forbidden, on_forbidden)  # type: ignore[arg-type]
    app.add_exception_handler(Conflict, on_conflict)  # type: ignore[arg-type]
    app.add_exception_handler(BundleError, on_bundle)  # type: ignore[arg-type]
    app.add_exception_handler(PolicyError, on_policy)  # type: ignore[arg-type]
    app.add_exception_handler(ConfigError, on_config)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
