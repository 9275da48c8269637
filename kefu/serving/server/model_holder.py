"""The model a server process is serving, and how it is replaced without dropping requests.

`LoadedModel` ties one classifier to its routing policy and its micro-batcher. Requests take
`ModelHolder.current` once, so every message of a request is scored and routed by the same
model even while an admin reload swaps in a new one: the new model is loaded, validated and
warmed on a thread while the old one keeps serving, then swapped in one assignment; the old
batcher finishes what it holds and stops. Any failure leaves the old model in place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from kefu.errors import BundleError, InputError, KefuError
from kefu.serving.classifier import Classifier, Prediction
from kefu.serving.routing import RoutingPolicy
from kefu.serving.server.microbatch import MicroBatcher, NotReady
from kefu.serving.server.observability import Metrics
from kefu.serving.settings import Settings

log = logging.getLogger("kefu.runtime")

# Warm-up texts: a short one and one past the model window, so the first real request finds
# ORT's allocations and kernels for both ends of the shape range ready.
WARMUP_TEXTS = ("在吗", "我的快递什么时候到" * 64)


@dataclass
class LoadedModel:
    classifier: Classifier
    policy: RoutingPolicy
    batcher: MicroBatcher[Prediction]
    bundle_dir: Path
    load_seconds: float

    @property
    def model_version(self) -> str:
        return self.classifier.model_version

    @property
    def variant(self) -> str:
        return self.classifier.variant


def load_model(
    settings: Settings,
    metrics: Metrics,
    bundle_dir: Path | None = None,
    variant: str | None = None,
) -> LoadedModel:
    """Read, validate and warm a bundle (blocking: call it on a thread from async code)."""
    started = time.perf_counter()
    bundle_dir = Path(bundle_dir or settings.bundle)
    chosen_variant = variant or settings.variant
    if chosen_variant not in (None, "fp32", "int8"):
        raise InputError(
            f"variant must be 'fp32' or 'int8', got {chosen_variant!r}", field="variant"
        )
    classifier = Classifier.from_bundle(
        bundle_dir,
        variant=chosen_variant,
        intra_op_threads=settings.threads_per_worker,
        calibration_overrides=settings.thresholds,
    )
    policy = RoutingPolicy.for_bundle(classifier.bundle, settings.policy)
    top_k = settings.top_k
    classifier.predict(list(WARMUP_TEXTS), top_k=top_k)
    batcher: MicroBatcher[Prediction] = MicroBatcher(
        lambda texts: classifier.predict(texts, top_k=top_k),
        max_batch_size=settings.batch_max_size,
        max_wait_ms=settings.batch_max_wait_ms,
        queue_size=settings.queue_size,
        length_cap=classifier.bundle.manifest.max_length,
        on_batch=metrics.observe_batch,
        on_depth=metrics.queue_depth.set,
    )
    return LoadedModel(classifier, policy, batcher, bundle_dir, time.perf_counter() - started)


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

    async def predict(
        self, model: LoadedModel, texts: list[str]
    ) -> tuple[LoadedModel, list[Prediction]]:
        """Predictions by `model`, or by its successor when a reload retired it in between."""
        try:
            return model, await model.batcher.submit(texts)
        except NotReady:
            current = self.require()
            if current is model:
                raise
            return current, await current.batcher.submit(texts)

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
        """Load, validate and warm a bundle, then swap it in. Returns (new, old)."""
        async with self._reload_lock:
            old = self.require()
            target = bundle_dir or old.bundle_dir
            try:
                new = await asyncio.to_thread(
                    load_model, self.settings, self.metrics, target, variant or old.variant
                )
            except Exception as exc:
                log.warning(
                    "reload refused", extra={"fields": {"bundle": str(target), "error": str(exc)}}
                )
                if isinstance(exc, KefuError):
                    raise
                # tokenizers or ORT failing on a file whose hash is fine: still the bundle's fault
                raise BundleError(f"{target}: cannot load the bundle: {exc}") from None
            self.metrics.model_info.labels(old.model_version, old.variant).set(0)
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
        self.metrics.model_info.labels(loaded.model_version, loaded.variant).set(1)
