"""POST /v1/admin/reload: load, validate and warm another bundle, then swap it in.

On any failure the old model keeps serving (`ModelHolder.reload`); the errors, and the log line
of a refusal, speak of the request's `bundle` and `variant` fields, not of the command line's
options (`model_holder.in_request_terms`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends

from kefu.errors import BundleError, Conflict
from kefu.serving.server.dependencies import StateDep, require_admin
from kefu.serving.server.openapi_errors import OK, RELOAD_ERRORS
from kefu.serving.server.request_schemas import ReloadRequest
from kefu.serving.server.response_schemas import ReloadResponse

router = APIRouter()


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    responses=OK | RELOAD_ERRORS,
    dependencies=[Depends(require_admin)],
    summary="Load, validate and warm a bundle, then swap it in; on failure keep the old one",
)
async def reload_model(state: StateDep, body: ReloadRequest | None = None) -> ReloadResponse:
    settings = state.settings
    if settings.workers > 1:
        raise Conflict(
            f"reload swaps the model of one worker process only, and {settings.workers} workers "
            "are running; restart the server (or run one worker per container) to change models",
            code="reload_unsupported",
        )
    body = body or ReloadRequest()
    if body.bundle == "":  # Path("") would be the server's working directory
        raise BundleError(
            "bundle is empty; name the bundle directory, or leave bundle out to reload the "
            "current one"
        )
    bundle = None if body.bundle is None else Path(body.bundle)
    new, old = await state.models.reload(bundle, body.variant)
    return ReloadResponse(
        model_version=new.model_version,
        previous_model_version=old.model_version,
        bundle=str(new.bundle_dir),
        variant=new.variant,
        load_seconds=round(new.load_seconds, 3),
    )
