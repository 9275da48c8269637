"""The per-head numbers of one test set: model, INT8 twin, baseline and per-source scores.

Macro-F1 (`macro_f1`) averages F1 over the classes with at least `min_support` gold rows in
the set (10 by default): a class with three test messages swings the average by chance, so
it is reported in the per-class table beside it but not averaged. `macro_f1_all` averages
every class present in the gold or predicted labels, as scikit-learn does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kefu.serving.bundle.schema import HeadCalibration
from kefu.serving.taxonomy import HEADS
from kefu.training.calibration_metrics import ECE_BINS, expected_calibration_error
from kefu.training.data.loader import LabelledData
from kefu.training.evaluation.baseline import HeadBaseline
from kefu.training.evaluation.inference import HeadOutputs
from kefu.training.evaluation.metrics import HeadScores, head_scores

MIN_SUPPORT = 10


@dataclass
class HeadGold:
    """Rows of the evaluation data that carry a label of one head known to the bundle."""

    rows: np.ndarray  # (m,) int row indices into the evaluation data
    gold: np.ndarray  # (m,) int label indices into the bundle's labels
    unknown: int  # rows whose label the bundle does not know (skipped)


def head_gold(
    data: LabelledData, head: str, labels: Sequence[str], trained: bool = True
) -> HeadGold:
    """The rows scored for `head`: none when the bundle never trained it (its scores are null)."""
    index = {label: i for i, label in enumerate(labels)}
    rows: list[int] = []
    gold: list[int] = []
    unknown = 0
    for row_number, label in enumerate(data.labels(head) if trained else ()):
        if label is None:
            continue
        if label not in index:
            unknown += 1
            continue
        rows.append(row_number)
        gold.append(index[label])
    return HeadGold(np.asarray(rows, dtype=np.int64), np.asarray(gold, dtype=np.int64), unknown)


def supported_macro_f1(scores: HeadScores, min_support: int) -> float:
    """Mean F1 of the classes with at least `min_support` gold rows (NaN when none has)."""
    f1 = [c.f1 for c in scores.per_class.values() if c.support >= min_support]
    return float(np.mean(f1)) if f1 else math.nan


def scored(gold: HeadGold, predicted: np.ndarray, labels: Sequence[str]) -> HeadScores:
    return head_scores(gold.gold, predicted[gold.rows], labels)


def model_head(
    scores: HeadScores,
    gold: HeadGold,
    outputs: HeadOutputs,
    probabilities: tuple[np.ndarray, np.ndarray],  # calibrated, temperature 1; (n, k) each
    rule: HeadCalibration,
    min_support: int,
) -> dict[str, Any]:
    """One head of a set's "model" block: the contract keys plus calibration and abstention."""
    calibrated, uncalibrated = probabilities
    abstain = outputs.abstain[gold.rows]
    correct = outputs.predicted[gold.rows] == gold.gold
    return {
        "accuracy": scores.accuracy,
        "macro_f1": supported_macro_f1(scores, min_support),
        "macro_f1_all": scores.macro_f1,
        "ece": expected_calibration_error(calibrated[gold.rows], gold.gold, ECE_BINS),
        "ece_uncalibrated": expected_calibration_error(
            uncalibrated[gold.rows], gold.gold, ECE_BINS
        ),
        "abstain_rate": float(abstain.mean()) if len(abstain) else math.nan,
        "answered_accuracy": float(correct[~abstain].mean()) if (~abstain).any() else math.nan,
        "temperature": rule.temperature,
        "threshold": rule.threshold,
        "margin": rule.margin,
        "n": scores.n,
        "unknown_labels": gold.unknown,
        "per_class": {label: s.as_dict() for label, s in scores.per_class.items()},
    }


def int8_head(
    scores: HeadScores,
    fp32_f1: float,
    gold: HeadGold,
    outputs: HeadOutputs,
    fp32_outputs: HeadOutputs,
    calibrated: np.ndarray,
    min_support: int,
) -> dict[str, Any]:
    macro_f1 = supported_macro_f1(scores, min_support)
    return {
        "macro_f1": macro_f1,
        "accuracy": scores.accuracy,
        "ece": expected_calibration_error(calibrated[gold.rows], gold.gold, ECE_BINS),
        "macro_f1_delta_points": 100 * (macro_f1 - fp32_f1),
        "agreement_with_fp32": float((outputs.predicted == fp32_outputs.predicted).mean()),
        "abstain_rate": float(outputs.abstain[gold.rows].mean()) if len(gold.rows) else math.nan,
        "available": True,
    }


def baseline_predictions(
    baseline: HeadBaseline | None,
    texts: Sequence[str],  # every text of the set
    labels: Sequence[str],
) -> np.ndarray | None:
    """(n,) the baseline's label index per text; None without a baseline for the head."""
    if baseline is None:
        return None
    index = {label: i for i, label in enumerate(labels)}
    return np.asarray([index[label] for label in baseline.predict(texts)], dtype=np.int64)


def baseline_head(
    baseline: HeadBaseline | None,
    predicted: np.ndarray | None,  # `baseline_predictions` of every text; `gold` picks the rows
    gold: HeadGold,
    labels: Sequence[str],
    min_support: int,
) -> dict[str, Any]:
    if baseline is None or predicted is None:  # e.g. logs labelled for intent only
        return {"accuracy": None, "macro_f1": None, "macro_f1_all": None, "n_train": 0}
    scores = scored(gold, predicted, labels)
    return {
        "accuracy": scores.accuracy,
        "macro_f1": supported_macro_f1(scores, min_support),
        "macro_f1_all": scores.macro_f1,
        "n_train": baseline.n_train,
    }


def by_source(
    data: LabelledData,
    golds: Mapping[str, HeadGold],
    outputs: Mapping[str, HeadOutputs],
    labels: Mapping[str, Sequence[str]],
    min_support: int,
) -> dict[str, Any]:
    """Scores per value of the rows' `source` column ({} when the data has none)."""
    sources = [row.extra.get("source") for row in data.rows]
    if not any(sources):
        return {}
    out: dict[str, Any] = {}
    for source in sorted({s for s in sources if s}):
        block: dict[str, Any] = {"n": sources.count(source)}
        for head in HEADS:
            gold = golds[head]
            keep = np.array([sources[row] == source for row in gold.rows], dtype=bool)
            part = HeadGold(gold.rows[keep], gold.gold[keep], 0)
            scores = scored(part, outputs[head].predicted, labels[head])
            block[head] = {
                "macro_f1": supported_macro_f1(scores, min_support),
                "accuracy": scores.accuracy,
                "n": scores.n,
            }
        out[source] = block
    return out
