"""Evaluate a bundle on labelled data: the model (fp32 and INT8) against the TF-IDF baseline.

Usage: `result = evaluate_bundle("models/default", load_labelled("test.jsonl"), "reports/x",
train_data=load_labelled("train.jsonl"))`; `result.metrics` is what `metrics.json` holds.

Everything runs on the bundle's ONNX files through `kefu.serving.classifier.Classifier`, the code
serving runs, so the numbers describe the deployed model and not a torch twin of it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kefu.errors import BundleError, DataError
from kefu.serving.bundle import METRICS, Bundle, HeadCalibration, read_bundle
from kefu.serving.classifier import Classifier
from kefu.serving.taxonomy import HEADS
from kefu.training.calibration_metrics import ECE_BINS, expected_calibration_error
from kefu.training.data.loader import LabelledData
from kefu.training.evaluation import plots
from kefu.training.evaluation.baseline import fit_head_baseline
from kefu.training.evaluation.inference import (
    HeadOutputs,
    calibrated_probabilities,
    raw_probabilities,
    run_classifier,
)
from kefu.training.evaluation.metrics import HeadScores, head_scores
from kefu.training.evaluation.public_dev import PublicSet, evaluate_public_sets


@dataclass
class HeadGold:
    """Rows of the evaluation data that carry a label of one head known to the bundle."""

    rows: np.ndarray  # (m,) int row indices into the evaluation data
    gold: np.ndarray  # (m,) int label indices into the bundle's labels
    unknown: int  # rows whose label the bundle does not know (skipped)


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    figures: dict[str, dict[str, Path]] = field(default_factory=dict)  # kind -> head -> PNG


def evaluate_bundle(
    bundle_dir: str | Path,
    data: LabelledData,
    out_dir: str | Path,
    *,
    train_data: LabelledData,
    public_sets: list[PublicSet] | None = None,
    threads: int | None = None,
) -> EvaluationResult:
    """Score the bundle on `data`, fit and score the baseline, draw figures into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bundle = read_bundle(bundle_dir)
    if not data.rows:
        raise DataError("no usable rows to evaluate (every row was rejected)", file=data.source)
    texts = data.texts()
    golds = {head: _head_gold(data, head, bundle.labels[head]) for head in HEADS}

    clock = time.perf_counter()
    model = Classifier(bundle, variant="fp32", intra_op_threads=threads)
    outputs = run_classifier(model, texts, with_logits=True)
    calibrated = calibrated_probabilities(model, outputs)
    uncalibrated = raw_probabilities(outputs)
    model_metrics, confusion = {}, {}
    figures: dict[str, dict[str, Path]] = {"confusion": {}, "reliability": {}}
    for head in HEADS:
        gold, labels = golds[head], bundle.labels[head]
        scores = head_scores(gold.gold, outputs[head].predicted[gold.rows], labels)
        model_metrics[head] = _head_metrics(
            scores,
            gold,
            outputs[head],
            calibrated[head],
            uncalibrated[head],
            model.calibration[head],
        )
        confusion[head] = {"labels": list(labels), "matrix": scores.confusion.tolist()}
        title = f"{head} (n={scores.n})"
        figures["confusion"][head] = plots.plot_confusion(
            scores.confusion, labels, f"{title}: confusion", out / f"confusion_{head}.png"
        )
        curves = {
            "calibrated": (calibrated[head][gold.rows], gold.gold),
            "temperature 1": (uncalibrated[head][gold.rows], gold.gold),
        }
        figures["reliability"][head] = plots.plot_reliability(
            curves, f"{title}: reliability", out / f"reliability_{head}.png"
        )

    seconds = {"model": round(time.perf_counter() - clock, 1)}
    metrics: dict[str, Any] = {
        "model": model_metrics,
        "baseline": _timed(
            seconds, "baseline", _baseline_metrics, train_data, texts, golds, bundle.labels
        ),
        "int8": _timed(seconds, "int8", _int8_metrics, bundle, texts, golds, outputs, threads),
        "n": len(texts),
        "confusion": confusion,
        "bundle": {
            "model_version": bundle.manifest.model_version,
            "base_model": bundle.manifest.base_model,
            "default_variant": bundle.manifest.default_variant,
            "evaluated_variant": "fp32",
        },
        "data": {
            "file": data.source,
            "n": len(data.rows),
            "rejected": len(data.rejects),
            "hash": data.content_hash(),
        },
        "train_data": {"file": train_data.source, "n": len(train_data.rows)},
        "ece_bins": ECE_BINS,
    }
    if public_sets is not None:
        metrics["public_dev"] = _timed(
            seconds, "public_dev", evaluate_public_sets, model, public_sets
        )
    metrics["seconds"] = seconds  # wall time per stage, for the "couple of minutes" budget
    return EvaluationResult(metrics=json_safe(metrics), figures=figures)


def _head_metrics(
    scores: HeadScores,
    gold: HeadGold,
    outputs: HeadOutputs,
    calibrated: np.ndarray,
    uncalibrated: np.ndarray,
    rule: HeadCalibration,
) -> dict[str, Any]:
    """One head of metrics.json "model": the contract keys plus calibration and abstention."""
    abstain = outputs.abstain[gold.rows]
    correct = outputs.predicted[gold.rows] == gold.gold
    return {
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
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


def _timed(seconds: dict[str, float], stage: str, function: Any, *args: Any) -> Any:
    started = time.perf_counter()
    result = function(*args)
    seconds[stage] = round(time.perf_counter() - started, 1)
    return result


def _head_gold(data: LabelledData, head: str, labels: tuple[str, ...]) -> HeadGold:
    index = {label: i for i, label in enumerate(labels)}
    rows, gold, unknown = [], [], 0
    for row_number, label in enumerate(data.labels(head)):
        if label is None:
            continue
        if label not in index:
            unknown += 1
            continue
        rows.append(row_number)
        gold.append(index[label])
    return HeadGold(np.asarray(rows, dtype=np.int64), np.asarray(gold, dtype=np.int64), unknown)


def _baseline_metrics(
    train_data: LabelledData,
    texts: list[str],
    golds: dict[str, HeadGold],
    labels: dict[str, tuple[str, ...]],
) -> dict[str, Any]:
    result = {}
    for head in HEADS:
        known = set(labels[head])  # a label the bundle cannot output cannot be scored either
        train_labels = [label if label in known else None for label in train_data.labels(head)]
        if not any(train_labels):  # e.g. logs labelled for intent only: nothing to fit or compare
            result[head] = {"accuracy": None, "macro_f1": None, "n_train": 0}
            continue
        baseline = fit_head_baseline(head, train_data.texts(), train_labels)
        gold = golds[head]
        index = {label: i for i, label in enumerate(labels[head])}
        predicted = [index[label] for label in baseline.predict([texts[i] for i in gold.rows])]
        scores: HeadScores = head_scores(gold.gold, predicted, labels[head])
        result[head] = {
            "accuracy": scores.accuracy,
            "macro_f1": scores.macro_f1,
            "n_train": baseline.n_train,
        }
    return result


def _int8_metrics(
    bundle: Bundle,
    texts: list[str],
    golds: dict[str, HeadGold],
    fp32_outputs: dict[str, HeadOutputs],
    threads: int | None,
) -> dict[str, Any]:
    """INT8 vs fp32 per head; every value null when the bundle ships no INT8 model."""
    try:
        bundle.model_path("int8")
    except BundleError:
        return {head: {"macro_f1": None, "available": False} for head in HEADS}
    int8 = Classifier(bundle, variant="int8", intra_op_threads=threads)
    outputs = run_classifier(int8, texts, with_logits=True)
    calibrated = calibrated_probabilities(int8, outputs)
    result = {}
    for head in HEADS:
        gold = golds[head]
        scores = head_scores(gold.gold, outputs[head].predicted[gold.rows], bundle.labels[head])
        fp32 = head_scores(gold.gold, fp32_outputs[head].predicted[gold.rows], bundle.labels[head])
        agreement = outputs[head].predicted == fp32_outputs[head].predicted
        result[head] = {
            "macro_f1": scores.macro_f1,
            "accuracy": scores.accuracy,
            "ece": expected_calibration_error(calibrated[head][gold.rows], gold.gold, ECE_BINS),
            "macro_f1_delta_points": 100 * (scores.macro_f1 - fp32.macro_f1),
            "agreement_with_fp32": float(agreement.mean()),
            "abstain_rate": float(outputs[head].abstain[gold.rows].mean())
            if len(gold.rows)
            else math.nan,
            "available": True,
        }
    return result


def json_safe(value: Any) -> Any:
    """NaN (an undefined score, e.g. a head with no labelled rows) becomes null in JSON."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_metrics(metrics: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / METRICS  # the same name as the bundle's copy
    path.write_text(
        json.dumps(metrics, ensure_ascii=False, indent=2, allow_nan=False) + "\n", "utf-8"
    )
    return path
