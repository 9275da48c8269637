"""The kefu HTTP server: `create_app(settings)`; run it with `kefu serve --bundle DIR`.

The model is loaded, validated and warmed in the lifespan, before uvicorn accepts a
connection, and reached by handlers through typed dependencies. Handlers stay thin: schemas
parse, `handlers.py` checks and shapes, the micro-batcher runs `Deployment.triage` (model and
routing), `error_responses.py` maps every error to `{"error": {"code", "message", "field"}}`.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import SecretStr

from kefu.errors import Conflict, Forbidden, Unauthorized
from kefu.serving.bundle import POLICY
from kefu.serving.server.error_responses import install_error_handlers
from kefu.serving.server.handlers import (
    build_results,
    check_messages,
    conversation_context,
    observe,
)
from kefu.serving.server.middleware import BodyLimitMiddleware, RequestContextMiddleware
from kefu.serving.server.model_holder import LoadedModel, ModelHolder
from kefu.serving.server.observability import Metrics
from kefu.serving.server.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
    ModelInfo,
    ReloadRequest,
    ReloadResponse,
)
from kefu.serving.settings import Settings, load_settings
from kefu.serving.taxonomy import HEADS

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Body is not valid JSON.",
        401: "Missing or wrong X-API-Key.",
        413: "Too many messages or body too large.",
        415: "Body is not sent as application/json.",
        422: "A field is missing, of the wrong type, empty or too long.",
        503: "Overloaded or not ready; retry after Retry-After seconds.",
    }.items()
}

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Set when KEFU_API_KEYS is."
)
admin_token_header = APIKeyHeader(
    name="X-Admin-Token", auto_error=False, description="KEFU_ADMIN_TOKEN."
)


def _matches(given: str, secrets: list[SecretStr]) -> bool:
    """Constant-time comparison against every secret (no early exit on the first match)."""
    given_bytes = given.encode("utf-8", "surrogateescape")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given_bytes, secret.get_secret_value().encode("utf-8"))
    return matched


@dataclass(frozen=True)
class AppState:
    """What handlers need besides the request: settings, the model holder, the metrics."""

    settings: Settings
    models: ModelHolder
    metrics: Metrics


async def get_state(request: Request) -> AppState:
    return request.app.state.kefu


StateDep = Annotated[AppState, Depends(get_state)]


async def get_model(state: StateDep) -> LoadedModel:
    return state.models.require()


ModelDep = Annotated[LoadedModel, Depends(get_model)]


async def require_api_key(
    state: StateDep, key: Annotated[str | None, Depends(api_key_header)]
) -> None:
    keys = state.settings.api_keys
    if keys and not (key and _matches(key, keys)):
        raise Unauthorized("missing or invalid X-API-Key header")


async def require_admin(
    state: StateDep, token: Annotated[str | None, Depends(admin_token_header)]
) -> None:
    admin_token = state.settings.admin_token
    if admin_token is None:
        raise Forbidden("admin endpoints are disabled; set KEFU_ADMIN_TOKEN to enable them")
    if not (token and _matches(token, [admin_token])):
        raise Unauthorized("missing or invalid X-Admin-Token header")


router = APIRouter()


@router.post(
    "/v1/classify",
    response_model=ClassifyResponse,
    responses=ERRORS,
    dependencies=[Depends(require_api_key)],
    summary="Classify one message or a batch and route it",
)
async def classify(
    body: ClassifyRequest, request: Request, state: StateDep, model: ModelDep
) -> ClassifyResponse:
    messages = body.as_messages()
    check_messages(body, messages, state.settings, model.deployment.bundle.labels["intent"])
    model, triaged = await state.models.triage(
        model, [(message.text, conversation_context(message)) for message in messages]
    )
    results = build_results(messages, triaged)
    request.state.log.update(
        model_version=model.model_version,
        messages=observe(state.metrics, messages, results, state.settings.log_text),
    )
    return ClassifyResponse(
        model_version=model.model_version, request_id=request.state.request_id, results=results
    )


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="Readiness: a model is loaded and warmed", responses={503: ERRORS[503]}
)
async def readyz(model: ModelDep) -> dict[str, str]:
    return {"status": "ready", "model_version": model.model_version}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_endpoint(state: StateDep) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/model",
    response_model=ModelInfo,
    responses={401: ERRORS[401], 503: ERRORS[503]},
    dependencies=[Depends(require_api_key)],
    summary="The serving model: manifest, labels, thresholds, policy, limits",
)
async def model_info(model: ModelDep, state: StateDep) -> ModelInfo:
    settings = state.settings
    deployment = model.deployment
    bundle, classifier, policy = deployment.bundle, deployment.classifier, deployment.policy
    return ModelInfo(
        model_version=model.model_version,
        variant=model.variant,
        bundle=str(model.bundle_dir),
        manifest=asdict(bundle.manifest),
        labels={
            head: [
                {"label": label, "name": bundle.label_names[head].get(label, label)}
                for label in bundle.labels[head]
            ]
            for head in HEADS
        },
        intent_groups=dict(bundle.intent_groups),
        queues=dict(policy.group_queues),
        calibration={head: asdict(classifier.calibration[head]) for head in HEADS},
        policy=policy.describe() | {"source": str(settings.policy or Path(bundle.path) / POLICY)},
        limits={
            "max_batch": settings.max_batch,
            "max_text_chars": settings.max_text_chars,
            "max_body_bytes": settings.max_body_bytes,
            "max_length_tokens": bundle.manifest.max_length,
            "top_k": settings.top_k,
        },
    )


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    responses={
        401: ERRORS[401],
        403: {"model": ErrorBody},
        409: {"model": ErrorBody},
        422: ERRORS[422],
    },
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
    new, old = await state.models.reload(Path(body.bundle) if body.bundle else None, body.variant)
    return ReloadResponse(
        model_version=new.model_version,
        previous_model_version=old.model_version,
        bundle=str(new.bundle_dir),
        variant=new.variant,
        load_seconds=round(new.load_seconds, 3),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """A kefu app for `settings` (default: from KEFU_* environment variables)."""
    settings = settings or load_settings()
    metrics = Metrics()
    holder = ModelHolder(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await holder.start()
        try:
            yield
        finally:
            await holder.stop()
            metrics.close()

    app = FastAPI(
        title="kefu",
        summary="Chinese customer-service triage: intent, urgency, emotion and routing.",
        version="1",
        lifespan=lifespan,
    )
    app.state.kefu = AppState(settings, holder, metrics)
    install_error_handlers(app, settings.retry_after_seconds)
    app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)  # added last: outermost
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: `kefu.serving.server.app:app_from_env` with factory=True."""
    return create_app(load_settings())
