"""Run a bundle's ONNX model over many texts the way serving does, in length-sorted batches.

Evaluation goes through `kefu.serving.classifier.Classifier` (what the server runs), never through
torch: one `Classifier.logits` pass per batch feeds both `Classifier.predict_from_logits`
(labels and abstentions by the bundle's own rule) and the calibration curves. Sorting by length before batching keeps padding (and time) low on long review sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kefu.serving.classifier import Classifier, softmax
from kefu.serving.taxonomy import HEADS

BATCH_SIZE = 32  # measured: larger batches are slower on 2 cores (more padding, cache misses)


@dataclass
class HeadOutputs:
    """One head over n texts, rows in input order."""

    predicted: np.ndarray  # (n,) int label index into the bundle's labels
    abstain: np.ndarray  # (n,) bool, the bundle's threshold/margin rule
    logits: np.ndarray | None = None  # (n, k) float32 raw logits, when asked for


def run_classifier(
    classifier: Classifier,
    texts: Sequence[str],
    *,
    with_logits: bool = False,
    batch_size: int = BATCH_SIZE,
) -> dict[str, HeadOutputs]:
    """Predict every text; returns one HeadOutputs per head with rows in input order."""
    n = len(texts)
    index = {
        head: {label: i for i, label in enumerate(classifier.bundle.labels[head])} for head in HEADS
    }
    predicted = {head: np.zeros(n, dtype=np.int64) for head in HEADS}
    abstain = {head: np.zeros(n, dtype=bool) for head in HEADS}
    logits: dict[str, list[np.ndarray]] = {head: [] for head in HEADS}
    order = sorted(range(n), key=lambda row: len(texts[row]))
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        batch_texts = [texts[row] for row in rows]
        encoded = classifier.encoder.encode(batch_texts)
        batch_logits = classifier.logits(encoded)  # one model pass serves labels and curves
        predictions = classifier.predict_from_logits(
            batch_texts, batch_logits, encoded.truncated, top_k=1
        )
        for row, prediction in zip(rows, predictions, strict=True):
            for head in HEADS:
                predicted[head][row] = index[head][prediction.heads[head].label]
                abstain[head][row] = prediction.heads[head].abstain
        if with_logits:
            for head, values in batch_logits.items():
                logits[head].append(values)
    outputs = {}
    for head in HEADS:
        head_logits = None
        if with_logits:
            k = len(classifier.bundle.labels[head])
            stacked = np.concatenate(logits[head]) if logits[head] else np.zeros((0, k), np.float32)
            head_logits = np.empty_like(stacked)
            head_logits[order] = stacked  # undo the length sort
        outputs[head] = HeadOutputs(predicted[head], abstain[head], head_logits)
    return outputs


def calibrated_probabilities(
    classifier: Classifier, outputs: dict[str, HeadOutputs]
) -> dict[str, np.ndarray]:
    """(n, k) per head with the bundle's temperatures: what `Classifier.predict_proba` returns."""
    return classifier.probabilities({head: _logits(outputs, head) for head in HEADS})


def raw_probabilities(outputs: dict[str, HeadOutputs]) -> dict[str, np.ndarray]:
    """(n, k) per head at temperature 1: the model before calibration, for ECE before/after."""
    return {head: softmax(_logits(outputs, head), 1.0) for head in HEADS}


def _logits(outputs: dict[str, HeadOutputs], head: str) -> np.ndarray:
    logits = outputs[head].logits
    if logits is None:
        raise ValueError("logits were not collected; call run_classifier(..., with_logits=True)")
    return logits
