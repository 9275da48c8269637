"""The model a server process is serving, and how it is replaced without dropping requests.

`LoadedModel` ties one `Deployment` (classifier + routing policy) to its micro-batcher. Requests take
`ModelHolder.current` once, so every message of a request is scored and routed by the same
model even while an admin reload swaps in a new one: the new model is loaded, validated and
warmed on a thread while the old one keeps serving, then swapped in one assignment; the old
batcher finishes what it holds and stops. Any failure leaves the old model in place.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from kefu.errors import BundleError, BundleNotFound, KefuError, NotReady, VariantNotFound
from kefu.serving.deployment import Deployment, Triage
from kefu.serving.routing import ConversationContext
from kefu.serving.server.label_enums import check_labels_in_schema
from kefu.serving.server.metrics import Metrics
from kefu.serving.server.microbatch import MicroBatcher
from kefu.serving.settings import Settings

log = logging.getLogger("kefu.runtime")

Message = tuple[str, ConversationContext]  # what the micro-batcher queues: text and context


@dataclass
class LoadedModel:
    """One deployment and the micro-batcher that feeds it (one inference thread)."""

    deployment: Deployment
    batcher: MicroBatcher[Message, Triage]

    @property
    def model_version(self) -> str:
        return self.deployment.model_version

    @property
    def variant(self) -> str:
        return self.deployment.variant

    @property
    def bundle_dir(self) -> Path:
        return self.deployment.bundle_dir

    @property
    def load_seconds(self) -> float:
        return self.deployment.load_seconds


def load_model(
    settings: Settings,
    metrics: Metrics,
    bundle_dir: Path | None = None,
    variant: str | None = None,
) -> LoadedModel:
    """Read, validate and warm a bundle (blocking: call it on a thread from async code)."""
    # The worker's cores go to inference threads that each run whole model calls on one ORT
    # thread, rather than to one call split over ORT's threads: on short messages ORT's own
    # threads mostly wait for each other (measured: the extra thread did a third of the work
    # and, spinning, burned more CPU than the model), while two calls side by side keep both
    # cores on real work. A call made while the model is idle (one client) has the cores to
    # itself and runs on a session with all of them (`lone_threads`): a lone message is
    # answered about a third sooner (benchmarks/README.md).
    deployment = Deployment.load(
        Path(settings.bundle if bundle_dir is None else bundle_dir),
        variant=settings.variant if variant is None else variant,  # "" is refused, not "default"
        policy_path=settings.policy,
        threads=1,
        lone_threads=settings.threads_per_worker,
        calibration_overrides=settings.thresholds,
        max_text_chars=settings.max_text_chars,  # for the warm-up; requests are checked below
        warm=True,
    )
    check_labels_in_schema(deployment.bundle.labels, str(deployment.bundle_dir))
    top_k = settings.top_k

    def triage(messages: list[Message], lone: bool = False) -> list[Triage]:
        # Every text was checked once, by the request schema (a string, valid Unicode) and
        # `handlers.check_messages` (KEFU_MAX_TEXT_CHARS, something to read), which answer
        # with the API's own field paths: the deployment need not check them again.
        return deployment.triage(
            [text for text, _ in messages],
            [context for _, context in messages],
            top_k=top_k,
            lone=lone,
            check_texts=False,
        )

    batcher: MicroBatcher[Message, Triage] = MicroBatcher(
        triage,
        run_alone=functools.partial(triage, lone=True),
        length_of=lambda message: len(message[0]),
        max_batch_size=settings.batch_max_size,
        max_wait_ms=settings.batch_max_wait_ms,
        queue_size=settings.queue_size,
        length_cap=deployment.bundle.manifest.max_length,
        on_batch=metrics.observe_batch,
        on_depth=metrics.queue_depth.set,
        threads=settings.threads_per_worker,
    )
    return LoadedModel(deployment, batcher)


def in_request_terms(exc: Exception, target: Path, bundle_named: bool) -> KefuError:
    """Why a reload of `target` was refused, as the reload request's caller can act on it: a
    bundle or variant that is not there is named anew through the request's `bundle` or
    `variant`, not the command line's options (`NotThere.found` is the one statement of what
    was found). `bundle_named`: the request named the bundle rather than leaving it out."""
    if isinstance(exc, VariantNotFound):
        return BundleError(f"{exc.found}; set the request's variant to one it has", field="variant")
    if isinstance(exc, BundleNotFound):
        advice = (
            "set the request's bundle to a bundle directory on the server, or leave bundle out "
            "to reload the current one"
            if bundle_named
            else "the serving model was loaded from it: set the request's bundle to a bundle "
            "directory on the server"
        )
        return BundleError(f"{exc.found}; {advice}")
    if isinstance(exc, KefuError):
        return exc
    # tokenizers or ORT failing on a file whose hash is fine: still the bundle's fault
    return BundleError(f"{target}: cannot load the bundle: {exc}")


class ModelHolder:
    """The current model of this process; `None` until start-up finished (then /readyz = 200)."""

    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.current: LoadedModel | None = None
        self._reload_lock = asyncio.Lock()

    def require(self) -> LoadedModel:
        if self.current is None:
            raise NotReady("the model is not loaded yet (or the server is shutting down)")
        return self.current

    async def triage(
        self, model: LoadedModel, messages: list[Message]
    ) -> tuple[LoadedModel, list[Triage]]:
        """Results by `model`, or by its successor when a reload retired it in between."""
        try:
            return model, await model.batcher.submit(messages)
        except NotReady:
            current = self.require()
            if current is model:
                raise
            return current, await current.batcher.submit(messages)

    async def start(self) -> LoadedModel:
        loaded = await asyncio.to_thread(load_model, self.settings, self.metrics)
        self._install(loaded)
        log.info(
            "model ready",
            extra={
                "fields": {
                    "model_version": loaded.model_version,
                    "variant": loaded.variant,
                    "bundle": str(loaded.bundle_dir),
                    "load_seconds": round(loaded.load_seconds, 3),
                    "ort_threads": self.settings.threads_per_worker,
                }
            },
        )
        return loaded

    async def reload(
        self, bundle_dir: Path | None, variant: str | None
    ) -> tuple[LoadedModel, LoadedModel]:
        """Load, validate and warm a bundle, then swap it in. Returns (new, old); a refusal is
        logged and raised in the request's terms (`in_request_terms`)."""
        async with self._reload_lock:
            old = self.require()
            target = old.bundle_dir if bundle_dir is None else bundle_dir
            try:
                new = await asyncio.to_thread(
                    load_model,
                    self.settings,
                    self.metrics,
                    target,
                    old.variant if variant is None else variant,
                )
            except Exception as exc:
                refusal = in_request_terms(exc, target, bundle_named=bundle_dir is not None)
                log.warning(
                    "reload refused",
                    extra={"fields": {"bundle": str(target), "error": str(refusal)}},
                )
                raise refusal from None
            self._install(new)
            await old.batcher.close()
            log.info(
                "model reloaded",
                extra={
                    "fields": {
                        "model_version": new.model_version,
                        "previous": old.model_version,
                        "bundle": str(new.bundle_dir),
                        "load_seconds": round(new.load_seconds, 3),
                    }
                },
            )
            return new, old

    async def stop(self) -> None:
        loaded, self.current = self.current, None
        if loaded is not None:
            await loaded.batcher.close()

    def _install(self, loaded: LoadedModel) -> None:
        loaded.batcher.start()
        self.current = loaded  # the atomic swap: requests read `current` once
        self.metrics.serving_model(loaded.model_version, loaded.variant)
