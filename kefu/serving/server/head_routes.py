"""GET endpoints that answer HEAD too: `get_route(router, path, ...)` in place of `router.get`.

HTTP has a server answer HEAD wherever it answers GET (RFC 9110, 9.3.2), and load balancers and
uptime checkers often probe with HEAD; FastAPI registers GET alone, so they got 405. Each path
is registered twice: GET, as documented, and HEAD on the same endpoint and dependencies, left
out of /openapi.json. A HEAD operation per endpoint would give every generated client a second
method per probe that returns nothing, and FastAPI would derive both operations' operationId
from the one endpoint. A HEAD answer is the GET answer, status and headers (Content-Length
included); uvicorn writes no body for HEAD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def get_route(router: APIRouter, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """Decorator: `endpoint` answers GET and HEAD at `path` (options as `router.get` takes)."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, methods=["GET"], **options)
        router.add_api_route(
            path, endpoint, methods=["HEAD"], **(options | {"include_in_schema": False})
        )
        return endpoint

    return register
