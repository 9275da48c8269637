"""How a message is triaged: one object turns texts into predictions and routing decisions.

`Deployment.load(bundle_dir, ...)` reads and validates a bundle, starts one ONNX Runtime
session with an explicit thread count and validates the routing policy against the bundle's
labels, once. `triage(texts, contexts)` is then the only predict-then-route path of kefu: the
HTTP server calls it from its micro-batcher, batch scoring calls `triage_in_batches` per chunk,
and evaluation calls it on labelled test sets, so the three can never disagree on a message.

Usage:
    deployment = Deployment.load("models/default", variant="int8")
    for prediction, decision in deployment.triage(["我的快递三天没动了"]):
        print(prediction.intent.label, decision.action, decision.reasons)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kefu.errors import InputError
from kefu.serving.bundle.reader import Bundle, read_bundle
from kefu.serving.bundle.schema import VARIANTS
from kefu.serving.classifier import Classifier, Prediction
from kefu.serving.inputs import checked_batch_size, checked_top_k
from kefu.serving.length_batches import length_sorted_batches
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS
from kefu.serving.preview import preview
from kefu.serving.routing import ConversationContext, Decision, decide
from kefu.serving.routing_policy import RoutingPolicy

# Warm-up texts: a short one and one past the model window, so the first real request finds
# ORT's allocations and kernels for both ends of the shape range ready.
WARMUP_TEXTS = ("在吗", "我的快递什么时候到" * 64)
NO_CONTEXT = ConversationContext()


class Triage(NamedTuple):
    prediction: Prediction
    decision: Decision


@dataclass
class TriageRun:
    """`triage_in_batches` output: results in input order, raw logits per head when asked."""

    results: list[Triage]
    logits: dict[str, np.ndarray] | None = None  # head -> (n, k) float32, input order


def check_deployable(
    bundle_dir: str | Path, variant: str | None = None, policy_path: str | Path | None = None
) -> tuple[Bundle, RoutingPolicy]:
    """The cheap checks, without starting ONNX Runtime: bundle, variant file, policy.

    `kefu serve` runs them before forking workers and `kefu score` before reading any row, so
    a bad argument fails in a second with one line instead of once per worker.
    """
    if variant not in (None, *VARIANTS):
        raise InputError(
            f"unknown model variant {preview(variant)}; expected one of {sorted(VARIANTS)}",
            field="variant",
        )
    bundle = read_bundle(bundle_dir)
    bundle.model_path(variant)
    return bundle, RoutingPolicy.for_bundle(bundle, policy_path)


class Deployment:
    """A bundle ready to triage: classifier, routing policy and threads, loaded once."""

    def __init__(self, classifier: Classifier, policy: RoutingPolicy, load_seconds: float = 0.0):
        self.classifier = classifier
        self.policy = policy
        self.load_seconds = load_seconds

    @classmethod
    def load(
        cls,
        bundle_dir: str | Path,
        *,
        variant: str | None = None,
        policy_path: str | Path | None = None,
        threads: int | None = None,
        lone_threads: int | None = None,
        calibration_overrides: Mapping[str, Mapping[str, float]] | None = None,
        max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS,
        warm: bool = False,
    ) -> Deployment:
        """Read, validate (and optionally warm) a bundle; blocking, so call it off the loop.

        `max_text_chars`: longer texts are refused with an `InputError` (the server passes its
        KEFU_MAX_TEXT_CHARS; None: no limit)."""
        started = time.perf_counter()
        bundle, policy = check_deployable(bundle_dir, variant, policy_path)
        classifier = Classifier(
            bundle,
            variant=variant,
            intra_op_threads=threads,
            lone_threads=lone_threads,
            calibration_overrides=calibration_overrides,
            max_text_chars=max_text_chars,
        )
        deployment = cls(classifier, policy)
        if warm:
            # no text past the limit ever arrives, so none need be warmed for
            warmup = [text[:max_text_chars] for text in WARMUP_TEXTS]
            deployment.triage(warmup)
            if classifier.lone_session is not None:
                deployment.triage(warmup, lone=True)
        deployment.load_seconds = time.perf_counter() - started
        return deployment

    @property
    def bundle(self) -> Bundle:
        return self.classifier.bundle

    @property
    def bundle_dir(self) -> Path:
        return self.classifier.bundle.path

    @property
    def model_version(self) -> str:
        return self.classifier.model_version

    @property
    def variant(self) -> str:
        return self.classifier.variant

    def triage(
        self,
        texts: Sequence[str],
        contexts: Sequence[ConversationContext] | None = None,
        *,
        top_k: int = 3,
        entities: bool = True,
        lone: bool = False,
        check_texts: bool = True,
    ) -> list[Triage]:
        """One model call over `texts`, then routing of each message with its context.

        `top_k` is how many labels each head reports; routing reads every label whatever
        `top_k` (`HeadPrediction.ranked`), so a clarify action can offer `max_candidates`.
        `lone`: the model has nothing else to do, so the call may use the wider session.
        The texts are checked as `Classifier.predict` checks them; `check_texts=False` takes
        them as given, for the server, whose request checks (`handlers.check_messages`)
        already refused every bad text with the API's own error: a second pass costs about
        3 µs a message on the request path.
        """
        predictions = self.classifier.predict(
            texts, top_k=top_k, entities=entities, lone=lone, check_texts=check_texts
        )
        return self.route(predictions, contexts)

    def route(
        self,
        predictions: Sequence[Prediction],
        contexts: Sequence[ConversationContext] | None = None,
    ) -> list[Triage]:
        contexts = _contexts_for(predictions, contexts)
        return [
            Triage(prediction, decide(prediction, context, self.policy))
            for prediction, context in zip(predictions, contexts, strict=True)
        ]

    def triage_in_batches(
        self,
        texts: Sequence[str],
        contexts: Sequence[ConversationContext] | None = None,
        *,
        batch_size: int = 64,
        top_k: int = 1,
        entities: bool = False,
        keep_logits: bool = False,
        check_texts: bool = True,
    ) -> TriageRun:
        """`triage` over many texts in length-sorted batches, results back in input order.

        Sorting keeps padding low (a log mixes "在吗" with pasted order cards); the sort is
        stable, so the batch layout, and with it every float, is the same on every engine.
        Entities are off by default: bulk callers keep labels and routes, not spans.
        The texts are checked as `triage` checks them (`Classifier.checked_texts`, the same
        errors); `check_texts=False` scores them as given, for callers that already refused
        bad rows one by one (batch scoring's readers write a reject per row) or that measure
        every row read (evaluation): a second pass would cost 2-3% of a small model's time.
        """
        texts = self.classifier.checked_texts(texts) if check_texts else list(texts)
        top_k = checked_top_k(top_k)
        batch_size = checked_batch_size(batch_size)
        contexts = _contexts_for(texts, contexts)
        results: list[Triage | None] = [None] * len(texts)
        logits: dict[str, list[np.ndarray]] = {}
        order: list[int] = []
        for rows in length_sorted_batches([len(text) for text in texts], batch_size):
            batch_texts = [texts[row] for row in rows]
            encoded = self.classifier.encoder.encode(batch_texts)
            batch_logits = self.classifier.logits(encoded)
            predictions = self.classifier.predict_from_logits(
                batch_texts, batch_logits, encoded.truncated, top_k, entities=entities
            )
            routed = self.route(predictions, [contexts[row] for row in rows])
            for row, triage in zip(rows, routed, strict=True):
                results[row] = triage
            if keep_logits:
                order.extend(rows)
                for head, values in batch_logits.items():
                    logits.setdefault(head, []).append(values)
        return TriageRun(
            results=results,  # type: ignore[arg-type]
            logits=self._unsorted(logits, order, len(texts)) if keep_logits else None,
        )

    def top_k_for_rerouting(self, top_k: int) -> int:
        """How many labels per head to list in `top` for predictions routed again later from
        what was kept of them (a batch's sessions, evaluation's conversations): the clarify
        candidates and every urgency and emotion probability (`high_negative_probability`).
        A count, named apart from `HeadPrediction.ranked`, the list of every label."""
        labels = self.bundle.labels
        return max(
            top_k, self.policy.max_candidates, len(labels["urgency"]), len(labels["emotion"])
        )

    def _unsorted(
        self, logits: dict[str, list[np.ndarray]], order: list[int], n: int
    ) -> dict[str, np.ndarray]:
        out = {}
        for head, labels in self.bundle.labels.items():
            stacked = (
                np.concatenate(logits[head]) if logits.get(head) else np.zeros((0, len(labels)))
            )
            restored = np.zeros((n, len(labels)), dtype=np.float32)
            restored[order] = stacked
            out[head] = restored
        return out


def _contexts_for(
    messages: Sequence[object], contexts: Sequence[ConversationContext] | None
) -> Sequence[ConversationContext]:
    """One context per message, in the same order (no context: `NO_CONTEXT` for each); a
    TypeError names the first item that is no context, as `checked_texts` names a text."""
    if contexts is None:
        return [NO_CONTEXT] * len(messages)
    if isinstance(contexts, ConversationContext):
        raise TypeError(
            "contexts must be a list of ConversationContext, one per message, got one "
            "ConversationContext; for the same context on every message: [context] * len(texts)"
        )
    contexts = list(contexts)
    if len(contexts) != len(messages):
        raise ValueError(
            f"{len(contexts)} contexts for {len(messages)} messages; pass one "
            "ConversationContext per message, in the same order (None: no context for any)"
        )
    for index, context in enumerate(contexts):
        if not isinstance(context, ConversationContext):
            raise TypeError(
                f"contexts[{index}] is {type(context).__name__} {preview(context)}, not a "
                "ConversationContext; ConversationContext() for a message without one"
            )
    return contexts
