"""Accuracy cost of INT8: macro-F1 and accuracy per head, fp32 vs INT8, on the test split.

Scored through `kefu.serving.classifier.Classifier` (the serving path, calibrated probabilities,
top-1 label, no abstention), with macro-F1 from `kefu.training.evaluation.metrics`, the numbers
`kefu evaluate` reports. Also the share of rows where both variants pick the same label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kefu.bench.workload import token_counts
from kefu.serving.classifier import Classifier
from kefu.serving.taxonomy import HEADS
from kefu.training.data.loader import LabelledData
from kefu.training.evaluation.metrics import head_scores

BATCH = 64


def bench_accuracy(
    bundle_dir: Path,
    data: LabelledData,
    *,
    variants: tuple[str, ...] = ("fp32", "int8"),
    threads: int | None = None,
) -> dict[str, Any]:
    """{"rows", "variants": {v: {head: {macro_f1, accuracy, n}}}, "int8_minus_fp32_points", ...}."""
    texts = data.texts()
    predicted: dict[str, dict[str, np.ndarray]] = {}
    results: dict[str, Any] = {"rows": len(texts), "source": data.source, "variants": {}}
    for variant in variants:
        classifier = Classifier.from_bundle(  # every labelled row is measured, however long
            bundle_dir, variant=variant, intra_op_threads=threads, max_text_chars=None
        )
        probs = predict_all(classifier, texts)
        predicted[variant] = {head: probs[head].argmax(axis=1) for head in HEADS}
        results["variants"][variant] = {}
        for head in HEADS:
            labels = classifier.bundle.labels[head]
            index = {label: i for i, label in enumerate(labels)}
            gold = data.labels(head)
            known = [(i, index[label]) for i, label in enumerate(gold) if label in index]
            keep = [i for i, _ in known]
            scores = head_scores([g for _, g in known], predicted[variant][head][keep], labels)
            results["variants"][variant][head] = {
                "macro_f1": scores.macro_f1,
                "accuracy": scores.accuracy,
                "n": scores.n,
            }
    if {"fp32", "int8"} <= set(variants):
        fp32, int8 = results["variants"]["fp32"], results["variants"]["int8"]
        results["int8_minus_fp32_points"] = {
            head: 100 * (int8[head]["macro_f1"] - fp32[head]["macro_f1"]) for head in HEADS
        }
        results["same_top1_share"] = {
            head: float(np.mean(predicted["fp32"][head] == predicted["int8"][head]))
            for head in HEADS
        }
    return results


def predict_all(classifier: Classifier, texts: list[str]) -> dict[str, np.ndarray]:
    """Probabilities per head in `texts` order, computed in batches of similar length."""
    order = np.argsort(token_counts(classifier.encoder, texts), kind="stable")
    probs = {head: np.zeros((len(texts), len(classifier.bundle.labels[head]))) for head in HEADS}
    for start in range(0, len(texts), BATCH):
        rows = order[start : start + BATCH]
        batch = classifier.predict_proba([texts[int(i)] for i in rows])
        for head in HEADS:
            probs[head][rows] = batch[head]
    return probs
