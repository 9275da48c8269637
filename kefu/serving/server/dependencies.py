"""What the server's handlers depend on, typed: the app's state, the loaded model, credentials.

Handlers declare `StateDep` / `ModelDep` parameters and `require_api_key` / `require_admin`
dependencies instead of reading `request.app.state` themselves (the classify route excepted:
on the hottest path it reads them directly, see app.py). The two security schemes are defined
here once, so /openapi.json declares each with its own header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from kefu.serving.server.drain import Drain
from kefu.serving.server.gate import admin_token_problem, api_key_problem
from kefu.serving.server.metrics import Metrics
from kefu.serving.server.model_holder import LoadedModel, ModelHolder
from kefu.serving.settings import Settings

# Two schemes with their own names: under the default name (the class name) FastAPI would
# declare one scheme, the last one's header, on every endpoint.
api_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    auto_error=False,
    description="One of KEFU_API_KEYS; needed when they are set.",
)
admin_token_header = APIKeyHeader(
    name="X-Admin-Token",
    scheme_name="AdminToken",
    auto_error=False,
    description="KEFU_ADMIN_TOKEN; admin endpoints are disabled without it.",
)


@dataclass(frozen=True)
class AppState:
    """What handlers need besides the request: settings, the model holder, the metrics."""

    settings: Settings
    models: ModelHolder
    metrics: Metrics
    drain: Drain


async def get_state(request: Request) -> AppState:
    return request.app.state.kefu


StateDep = Annotated[AppState, Depends(get_state)]


async def get_model(state: StateDep) -> LoadedModel:
    return state.models.require()


ModelDep = Annotated[LoadedModel, Depends(get_model)]


async def require_api_key(
    state: StateDep, key: Annotated[str | None, Depends(api_key_header)]
) -> None:
    problem = api_key_problem(state.settings, key)
    if problem is not None:
        raise problem


async def require_admin(
    state: StateDep, token: Annotated[str | None, Depends(admin_token_header)]
) -> None:
    problem = admin_token_problem(state.settings, token)
    if problem is not None:
        raise problem
