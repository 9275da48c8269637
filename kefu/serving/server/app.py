"""The kefu HTTP server: `create_app(settings)`; run it with `kefu serve --bundle DIR`.

The model is loaded, validated and warmed in the lifespan, before uvicorn accepts a
connection, and reached by handlers through typed dependencies (`dependencies.py`; the admin
reload route is `admin.py`). Handlers stay thin: schemas
parse, `handlers.py` checks and shapes, the micro-batcher runs `Deployment.triage` (model and
routing), `error_responses.py` maps every error to `{"error": {"code", "message", "field"}}`
(`openapi_errors.py` documents them per endpoint).
Before FastAPI, middleware refuses what the request head alone decides (`gate.py`: overload,
credentials), reads the body under size and time limits (`middleware.py`) and keeps the unread
body of a refused request from holding the connection (`unread_body.py`); before any of it,
uvicorn's HTTP protocol bounds the time a request head may take (`head_timeout.py`) and writes
kefu's answers where uvicorn answers alone (`protocol.py`), counted through the lifespan state;
`drain.py` turns SIGTERM into a graceful shutdown. `/docs` is served from a pinned package
(`docs.py`). Every GET endpoint answers HEAD too (`head_routes.py`); `/metrics` answers in the
format the scraper asks for (`scrape_format.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from kefu import __version__
from kefu.errors import NotReady
from kefu.serving.policy_files import policy_source
from kefu.serving.server import admin
from kefu.serving.server.access_log import flush_logs
from kefu.serving.server.counted_log import flush_counted_logs
from kefu.serving.server.dependencies import (
    AppState,
    ModelDep,
    StateDep,
    api_key_header,
    require_api_key,
)
from kefu.serving.server.docs import install_docs
from kefu.serving.server.drain import Drain
from kefu.serving.server.error_responses import install_error_handlers
from kefu.serving.server.gate import GateMiddleware
from kefu.serving.server.handlers import (
    check_messages,
    conversation_context,
    observe,
    response_json,
    result_payloads,
)
from kefu.serving.server.head_routes import get_route
from kefu.serving.server.head_timeout import STATE_KEY as HEAD_TIMEOUTS
from kefu.serving.server.metrics import Metrics, sweep_dead_workers
from kefu.serving.server.middleware import (
    BodyReadMiddleware,
    RequestContextMiddleware,
    watch_disconnect,
)
from kefu.serving.server.model_holder import ModelHolder
from kefu.serving.server.openapi_errors import CONNECTION_ERRORS, ERRORS, OK
from kefu.serving.server.protocol import ERRORS_KEY as PROTOCOL_ERRORS
from kefu.serving.server.protocol import IDLE_CLOSED_KEY as IDLE_CONNECTIONS_CLOSED
from kefu.serving.server.request_schemas import ClassifyRequest
from kefu.serving.server.response_schemas import ClassifyResponse, ModelInfo
from kefu.serving.server.scrape_format import OPENMETRICS, scrape_body, scrape_format
from kefu.serving.server.unread_body import UnreadBodyMiddleware
from kefu.serving.settings import Settings, load_settings
from kefu.serving.taxonomy import HEADS

router = APIRouter()


@router.post(
    "/v1/classify",
    response_model=ClassifyResponse,
    response_model_exclude_unset=True,  # `metadata` is answered only when it was sent
    responses=OK | ERRORS,
    # The gate (gate.py) checks X-API-Key from the request head before anything else runs; the
    # scheme (defined by /v1/model's dependency) is attached here for the docs only. On the
    # hottest path FastAPI's dependency solving (the key, the state, the model) cost about
    # 0.08 ms a request, measured in process: the handler reads the state and model itself.
    openapi_extra={"security": [{api_key_header.scheme_name: []}]},
    summary="Classify one message or a batch and route it",
)
async def classify(body: ClassifyRequest, request: Request) -> Response:
    state: AppState = request.app.state.kefu
    model = state.models.require()
    messages = body.as_messages()
    check_messages(body, messages, state.settings, model.deployment.bundle.labels["intent"])
    watcher = watch_disconnect(request.scope, request.receive)
    try:
        model, triaged = await state.models.triage(
            model, [(message.text, conversation_context(message)) for message in messages]
        )
    finally:
        watcher.cancel()
    log = request.state.log
    log["model_version"] = model.model_version
    log["messages"] = observe(state.metrics, messages, triaged, state.settings.log_text)
    # `response_model` documents the answer; the body is built and serialised once here
    results = result_payloads(messages, triaged)
    return Response(
        response_json(model.model_version, request.state.request_id, results),
        media_type="application/json",
    )


@get_route(router, "/healthz", responses=OK, summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get_route(
    router,
    "/readyz",
    summary="Readiness: a model is loaded and warmed",
    responses=OK | {503: ERRORS[503]},
)
async def readyz(model: ModelDep, state: StateDep) -> dict[str, str]:
    if state.drain.draining:
        raise NotReady("the server is shutting down (SIGTERM); send requests elsewhere")
    return {"status": "ready", "model_version": model.model_version}


# A scrape gets the format its Accept header prefers (scrape_format.py): OpenMetrics for
# Prometheus 2 and 3, the classic text format (0.0.4) for older scrapers, curl and browsers;
# gzipped when Accept-Encoding allows it.
@get_route(
    router,
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: OK[200] | {"content": {OPENMETRICS: {"schema": {"type": "string"}}}}},
)
async def metrics_endpoint(request: Request, state: StateDep) -> Response:
    encoder, content_type = scrape_format(request.headers.get("accept"))
    body, headers = scrape_body(
        state.metrics.exposition(encoder), request.headers.get("accept-encoding")
    )
    return Response(body, media_type=content_type, headers=headers)


@get_route(
    router,
    "/v1/model",
    response_model=ModelInfo,
    responses=OK | {401: ERRORS[401], 503: ERRORS[503]},
    dependencies=[Depends(require_api_key)],
    summary="The serving model: manifest, labels, thresholds, policy, limits (no server paths)",
)
async def model_info(model: ModelDep, state: StateDep) -> ModelInfo:
    settings = state.settings
    deployment = model.deployment
    bundle, classifier, policy = deployment.bundle, deployment.classifier, deployment.policy
    return ModelInfo(
        model_version=model.model_version,
        variant=model.variant,
        bundle=model.bundle_dir.name,
        manifest=public_manifest(asdict(bundle.manifest)),
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
        policy=policy.describe() | {"source": policy_source(settings.policy)},
        limits={
            "max_batch": settings.max_batch,
            "max_text_chars": settings.max_text_chars,
            "max_body_bytes": settings.max_body_bytes,
            "max_metadata_bytes": settings.max_metadata_bytes,
            "max_length_tokens": bundle.manifest.max_length,
            "top_k": settings.top_k,
        },
    )


def public_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as API-key clients see it: a base model given as a local path is named only."""
    base_model = str(manifest.get("base_model", ""))
    if Path(base_model).is_absolute():
        manifest["base_model"] = Path(base_model).name
    return manifest


def create_app(settings: Settings) -> FastAPI:
    """A kefu app for `settings`; `app_from_env` is the one caller that reads the environment."""
    metrics = Metrics()
    holder = ModelHolder(settings, metrics)
    drain = Drain(settings.drain_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        sweep_dead_workers()  # a worker replaced after kill -9 left its live gauges behind
        await holder.start()
        drain.install()  # after uvicorn's own handler, which it wraps
        try:
            # lifespan state: uvicorn hands it to each connection's protocol (protocol.py),
            # which counts here what it answers or closes before the app sees a request
            yield {
                HEAD_TIMEOUTS: metrics.head_timed_out,
                PROTOCOL_ERRORS: metrics.protocol_error,
                IDLE_CONNECTIONS_CLOSED: metrics.idle_connection_closed,
            }
        finally:
            drain.uninstall()
            await holder.stop()
            metrics.close()
            flush_counted_logs()
            flush_logs()

    app = FastAPI(
        title="kefu",
        summary="Chinese customer-service triage: intent, urgency, emotion and routing.",
        description=CONNECTION_ERRORS,
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # A trailing slash gets 404 naming the path without it (error_responses.py), not
        # Starlette's bare 307: a client that does not resend a POST body on redirect would
        # send an empty request, and one that does pays a second round trip on every call.
        redirect_slashes=False,
    )
    app.state.kefu = AppState(settings, holder, metrics, drain)
    install_error_handlers(app, settings.retry_after_seconds)
    app.include_router(router)
    app.include_router(admin.router)
    install_docs(app)
    app.add_middleware(
        BodyReadMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
        retry_after=settings.retry_after_seconds,
    )
    routes = frozenset(
        getattr(route, "path", "") for route in (*router.routes, *admin.router.routes)
    )
    app.add_middleware(GateMiddleware, settings=settings, models=holder, routes=routes)
    app.add_middleware(
        UnreadBodyMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics, drain=drain)  # outermost
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: `kefu.serving.server.app:app_from_env` with factory=True."""
    return create_app(load_settings())
