"""What is refused from the request head alone, before a byte of the body is read.

Two checks, cheapest first. Load shedding: when the current model's queue cannot take a typical
request, `POST /v1/classify` gets a ready-made 503 + Retry-After without reading, parsing or
validating the body (under overload, refusing must cost far less than serving, or refusals eat
the CPU the model needs). Credentials: `/v1/admin/*` needs X-Admin-Token and every other `/v1/`
path X-API-Key (when keys are configured), so an unauthenticated caller gets 401 whatever its
body, never a 400 or 413 that shows its body was parsed. The FastAPI dependencies in `app.py`
run the same checks again for the OpenAPI security schemes.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from kefu.errors import Forbidden, KefuError, Overloaded, Unauthorized
from kefu.serving.server.error_responses import kefu_error_response
from kefu.serving.server.model_holder import ModelHolder
from kefu.serving.settings import Settings

CLASSIFY_PATH = "/v1/classify"
ADMIN_PREFIX = "/v1/admin/"
API_PREFIX = "/v1/"


def _matches(given: str, secrets: list[SecretStr]) -> bool:
    """Constant-time comparison against every secret (no early exit on the first match)."""
    given_bytes = given.encode("utf-8", "surrogateescape")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given_bytes, secret.get_secret_value().encode("utf-8"))
    return matched


def api_key_problem(settings: Settings, key: str | None) -> KefuError | None:
    keys = settings.api_keys
    if keys and not (key and _matches(key, keys)):
        return Unauthorized("missing or invalid X-API-Key header")
    return None


def admin_token_problem(settings: Settings, token: str | None) -> KefuError | None:
    if settings.admin_token is None:
        return Forbidden("admin endpoints are disabled; set KEFU_ADMIN_TOKEN to enable them")
    if not (token and _matches(token, [settings.admin_token])):
        return Unauthorized("missing or invalid X-Admin-Token header")
    return None


def _credential(scope: Scope, name: bytes) -> str | None:
    """The header's value; "" when it is sent more than once, which no key or token matches.

    Proxies and frameworks disagree on which of two copies wins (the first, the last, both
    joined), so a request carrying two is refused rather than judged by one of them.
    """
    values = [value for key, value in scope["headers"] if key == name]
    if len(values) > 1:
        return ""
    return values[0].decode("latin-1") if values else None


class GateMiddleware:
    def __init__(
        self, app: ASGIApp, settings: Settings, models: ModelHolder, routes: frozenset[str]
    ):
        self.app = app
        self.settings = settings
        self.models = models
        self.routes = routes  # paths of the API's endpoints: the metrics label of a refusal
        # The overload answer is built once: shedding must stay the cheapest path there is.
        busy = kefu_error_response(
            Overloaded("server busy: the model's queue is full; retry after a short pause"),
            settings.retry_after_seconds,
        )
        self._busy_status = busy.status_code
        self._busy_headers = busy.raw_headers
        self._busy_body = bytes(busy.body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        if path in self.routes:  # FastAPI has not routed it yet; the metrics need the route
            scope.setdefault("state", {})["route"] = path
        if path == CLASSIFY_PATH and self._overloaded():
            await send(
                {
                    "type": "http.response.start",
                    "status": self._busy_status,
                    "headers": self._busy_headers,
                }
            )
            await send({"type": "http.response.body", "body": self._busy_body})
            return
        if path.startswith(ADMIN_PREFIX):
            problem = admin_token_problem(self.settings, _credential(scope, b"x-admin-token"))
        else:
            problem = api_key_problem(self.settings, _credential(scope, b"x-api-key"))
        if problem is not None:
            await kefu_error_response(problem, self.settings.retry_after_seconds)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)

    def _overloaded(self) -> bool:
        current = self.models.current
        return current is not None and current.batcher.would_refuse()
