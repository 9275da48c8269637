"""Run a deployment over many texts the way serving does, and keep what evaluation needs.

Evaluation goes through `kefu.serving.deployment.Deployment` (what the server and batch
scoring run), never through torch: one model pass per length-sorted batch feeds the labels and
abstentions (by the bundle's own rule), the routing decisions, and the calibration curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kefu.serving.classifier import Classifier, Prediction, softmax
from kefu.serving.deployment import Deployment
from kefu.serving.routing import ConversationContext, Decision
from kefu.serving.taxonomy import HEADS

BATCH_SIZE = 32  # measured: larger batches are slower on 2 cores (more padding, cache misses)


@dataclass
class HeadOutputs:
    """One head over n texts, rows in input order."""

    predicted: np.ndarray  # (n,) int label index into the bundle's labels
    abstain: np.ndarray  # (n,) bool, the bundle's threshold/margin rule
    logits: np.ndarray | None = None  # (n, k) float32 raw logits, when asked for


@dataclass
class EvaluationRun:
    heads: dict[str, HeadOutputs]
    decisions: list[Decision]  # routing of each text, input order
    # each text's prediction with every label ranked (what routing read), input order
    predictions: list[Prediction]

    def __getitem__(self, head: str) -> HeadOutputs:
        return self.heads[head]


def run_deployment(
    deployment: Deployment,
    texts: Sequence[str],
    contexts: Sequence[ConversationContext] | None = None,
    *,
    with_logits: bool = False,
    batch_size: int = BATCH_SIZE,
) -> EvaluationRun:
    """Triage every text; per-head outputs and decisions with rows in input order."""
    run = deployment.triage_in_batches(
        texts,
        contexts,
        batch_size=batch_size,
        top_k=deployment.top_k_for_rerouting(
            1
        ),  # not cut: conversations re-route these predictions
        keep_logits=with_logits,
        check_texts=False,  # every row read is measured, as the reader kept it
    )
    labels = deployment.bundle.labels
    heads = {}
    for head in HEADS:
        index = {label: i for i, label in enumerate(labels[head])}
        # an untrained head predicts no label: -1, which no gold row is scored against
        predicted = np.array(
            [index.get(p.heads[head].label or "", -1) for p, _ in run.results], dtype=np.int64
        )
        abstain = np.array([p.heads[head].abstain for p, _ in run.results], dtype=bool)
        head_logits = run.logits[head] if run.logits is not None else None
        heads[head] = HeadOutputs(predicted, abstain, head_logits)
    return EvaluationRun(
        heads,
        [decision for _, decision in run.results],
        [prediction for prediction, _ in run.results],
    )


def calibrated_probabilities(
    classifier: Classifier, outputs: EvaluationRun
) -> dict[str, np.ndarray]:
    """(n, k) per head with the bundle's temperatures: what `Classifier.predict_proba` returns."""
    return classifier.probabilities({head: _logits(outputs, head) for head in HEADS})


def raw_probabilities(outputs: EvaluationRun) -> dict[str, np.ndarray]:
    """(n, k) per head at temperature 1: the model before calibration, for ECE before/after."""
    return {head: softmax(_logits(outputs, head), 1.0) for head in HEADS}


def _logits(outputs: EvaluationRun, head: str) -> np.ndarray:
    logits = outputs[head].logits
    if logits is None:
        raise ValueError("logits were not collected; call run_deployment(..., with_logits=True)")
    return logits
