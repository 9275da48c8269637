"""How far a test set's scores could move on another draw of the same traffic: bootstrap intervals.

A real test split of about 1,200 messages, whose macro-F1 averages classes of 10 to 60
messages, fixes a head's score only to within a few points, and the model's lead over the
baseline as loosely; a difference between two models or against a target is only news beyond
that. Each resample draws the set's units with replacement and scores model and baseline on
the same draw (a paired interval for the lead). The unit is the conversation where rows carry
a `session` (turns of one chat are read alike, so resampling turns would understate the
spread), the written family where they carry a `family`, and the message otherwise. Macro-F1
keeps the classes the full set averages (at least `min_support` gold rows), so every draw
averages the same classes. Percentile intervals from a fixed seed: the same data and
predictions give the same metrics.json.

What this does not cover: a retrained model moves too (another seed moved real-dev macro-F1 by
1-2 points, README), so a difference between two trainings needs both kinds of spread.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from kefu.serving.taxonomy import HEADS
from kefu.training.data.loader import LabelledData
from kefu.training.evaluation.head_metrics import HeadGold

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
CHUNK = 50  # resamples drawn at once: 50 x rows x 4 bytes
# Rows that are read alike resample together: the turns of one chat (`session`), a written
# message and its augmented variants (`family`, the seed corpus).
GROUP_COLUMNS = ("session", "family")


def resampling_units(data: LabelledData) -> tuple[np.ndarray, str]:
    """(unit index per row, unit name): rows sharing a value of the first grouping column the
    data has (`GROUP_COLUMNS`) share a unit; a row without one is a unit of its own."""
    for column in GROUP_COLUMNS:
        values = [row.extra.get(column) for row in data.rows]
        if any(value not in (None, "") for value in values):
            break
    else:
        return np.arange(len(data.rows), dtype=np.int64), "message"
    index: dict[str, int] = {}
    units = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        key = f"{column}:{value}" if value not in (None, "") else f"row:{row}"
        units[row] = index.setdefault(key, len(index))
    return units, column


def draw_weights(
    units: np.ndarray, resamples: int, seed: int, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """Yields (m, n_rows) int32 arrays, m <= `chunk`, `resamples` rows in all: how often each
    row is drawn, its unit's count in one resample (chunks keep a large test set's draws small)."""
    n_units = int(units.max()) + 1 if len(units) else 0
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picks = rng.integers(0, n_units, size=(size, n_units))
        flat = (np.arange(size)[:, None] * n_units + picks).ravel()
        counts = np.bincount(flat, minlength=size * n_units).reshape(size, n_units)
        yield counts.astype(np.int32)[:, units]


def macro_f1_draws(
    gold: np.ndarray, predicted: np.ndarray, weights: np.ndarray, classes: Sequence[int]
) -> np.ndarray:
    """(resamples,) macro-F1 over `classes` of each weighted draw of the (gold, predicted) rows."""
    draws = np.zeros(weights.shape[0], dtype=np.float64)
    for label in classes:
        is_gold = gold == label
        is_predicted = predicted == label
        true_positive = weights[:, is_gold & is_predicted].sum(axis=1)
        support = weights[:, is_gold].sum(axis=1)
        predicted_count = weights[:, is_predicted].sum(axis=1)
        denominator = support + predicted_count  # F1 = 2 TP / (support + predicted)
        f1 = np.zeros_like(draws)
        np.divide(2 * true_positive, denominator, out=f1, where=denominator > 0)
        draws += f1
    return draws / max(1, len(classes))


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    if not len(values):
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def uncertainty_block(
    data: LabelledData,
    golds: Mapping[str, HeadGold],
    model_predicted: Mapping[str, np.ndarray],  # (n,) label index per row of `data`
    baseline_predicted: Mapping[str, np.ndarray | None],
    min_support: int,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """{"method", "unit", "units", "resamples", "level", HEAD: {"macro_f1": [lo, hi],
    "baseline_macro_f1": [lo, hi], "lead_points": [lo, hi]}}; null where a head has no
    labelled rows or no baseline."""
    units, unit_name = resampling_units(data)
    block: dict[str, Any] = {
        "method": "bootstrap, percentile",
        "unit": unit_name,
        "units": int(units.max()) + 1 if len(units) else 0,
        "resamples": resamples,
        "level": LEVEL,
    }
    classes = {
        head: [c for c, n in enumerate(np.bincount(golds[head].gold)) if n >= min_support]
        for head in HEADS
    }
    scored = [head for head in HEADS if len(golds[head].rows) and classes[head]]
    model: dict[str, list[np.ndarray]] = {head: [] for head in scored}
    reference: dict[str, list[np.ndarray]] = {head: [] for head in scored}
    for weights in draw_weights(units, resamples, seed):
        for head in scored:
            gold = golds[head]
            head_weights = weights[:, gold.rows]
            model[head].append(
                macro_f1_draws(
                    gold.gold, model_predicted[head][gold.rows], head_weights, classes[head]
                )
            )
            baseline = baseline_predicted.get(head)
            if baseline is not None:
                reference[head].append(
                    macro_f1_draws(gold.gold, baseline[gold.rows], head_weights, classes[head])
                )
    for head in HEADS:
        entry: dict[str, Any] = {"macro_f1": None, "baseline_macro_f1": None, "lead_points": None}
        if head in scored:
            model_draws = np.concatenate(model[head])
            entry["macro_f1"] = percentile_interval(model_draws)
            if reference[head]:
                reference_draws = np.concatenate(reference[head])
                entry["baseline_macro_f1"] = percentile_interval(reference_draws)
                entry["lead_points"] = percentile_interval(100 * (model_draws - reference_draws))
        block[head] = entry
    return block


def escalation_intervals(
    units: np.ndarray,
    true_human: Sequence[bool],
    predicted_human: Sequence[bool],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, list[float] | None]:
    """{"precision", "recall", "rate_ratio"}: intervals of the hand-over's precision and recall
    and of the predicted human rate over the true one (draws where one is undefined, e.g. no
    customer to hand over, are left out). `units`: the resampling unit of each row given."""
    if not len(units):
        return {"precision": None, "recall": None, "rate_ratio": None}
    dense = np.unique(np.asarray(units), return_inverse=True)[1].reshape(-1)
    true = np.asarray(true_human, dtype=bool)
    predicted = np.asarray(predicted_human, dtype=bool)
    parts: dict[str, list[np.ndarray]] = {"precision": [], "recall": [], "rate_ratio": []}
    for weights in draw_weights(dense, resamples, seed):
        hits = weights[:, true & predicted].sum(axis=1)
        needed = weights[:, true].sum(axis=1)
        handed = weights[:, predicted].sum(axis=1)
        for name, top, bottom in (
            ("precision", hits, handed),
            ("recall", hits, needed),
            ("rate_ratio", handed, needed),
        ):
            ratio = np.full(len(weights), np.nan)
            np.divide(top, bottom, out=ratio, where=bottom > 0)
            parts[name].append(ratio)
    out: dict[str, list[float] | None] = {}
    for name, chunks in parts.items():
        values = np.concatenate(chunks) if chunks else np.empty(0)
        out[name] = percentile_interval(values[~np.isnan(values)])
    return out
