"""Classification measures of one head, computed from a confusion matrix.

Written with numpy rather than sklearn.metrics so that every number in a report can be traced
to one matrix (rows = gold label, columns = predicted label) and checked by hand.
Macro-F1 averages over the labels that occur in the gold or the predicted column, as
scikit-learn's `f1_score(average="macro")` does: a label absent from both cannot be scored, and
counting it as 0 would punish a small test split for the labels it happens to lack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def confusion_matrix(
    gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, n_labels: int
) -> np.ndarray:
    """(n_labels, n_labels) int64 counts: [i, j] = rows of gold label i predicted as j."""
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


@dataclass
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }


@dataclass
class HeadScores:
    """Accuracy, macro-F1 and per-class scores of one head on `n` labelled rows."""

    labels: tuple[str, ...]
    confusion: np.ndarray  # (k, k), rows gold, columns predicted
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]

    @property
    def n(self) -> int:
        return int(self.confusion.sum())


def scores_from_confusion(matrix: np.ndarray, labels: Sequence[str]) -> HeadScores:
    """Per-class precision/recall/F1 (0 where undefined), accuracy and macro-F1 of a matrix."""
    matrix = np.asarray(matrix, dtype=np.int64)
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    scored = (support + predicted) > 0
    total = int(matrix.sum())
    return HeadScores(
        labels=tuple(labels),
        confusion=matrix,
        accuracy=float(true_positive.sum() / total) if total else float("nan"),
        macro_f1=float(f1[scored].mean()) if scored.any() else float("nan"),
        per_class={
            label: ClassScores(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
            for i, label in enumerate(labels)
        },
    )


def head_scores(
    gold: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, labels: Sequence[str]
) -> HeadScores:
    """Scores of label indices `predicted` against `gold` (both into `labels`)."""
    return scores_from_confusion(confusion_matrix(gold, predicted, len(labels)), labels)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
