"""Evaluate a bundle on labelled test sets: the model (fp32 and INT8) against the TF-IDF baseline.

Usage: `result = evaluate_bundle("models/default", [TestSet("seed", load_labelled(...)),
TestSet("real", load_labelled(...))], "reports/x", train_data=training_data)`;
`result.metrics` is what `metrics.json` holds: the first set's block at the top level
(`model`, `baseline`, `int8`, `n`, ...) and one block of the same shape per further set under
its name, plus `test_sets` (their order) and `lead` (the set the model card leads with).

Everything runs on the bundle's ONNX files through `kefu.serving.deployment.Deployment`, the
code serving runs, so the numbers describe the deployed model and not a torch twin of it.
The routing blocks (`escalation`, `int8_escalation`: the same for the INT8 model, and
`conversations`) route with the bundle's policy, or with a policy file laid over it as a
deployment serves it (`policy`), and name which (`"policy"`: the file's name or "bundle", as
`GET /v1/model` does; `"policy_sha256"`: the sha256 of its bytes, as the manifest pins the
bundle's policy.yaml): a tuned policy hands over other messages.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kefu.errors import BundleError, DataError
from kefu.serving.bundle.reader import Bundle, read_bundle
from kefu.serving.bundle.schema import METRICS, POLICY, sha256_file
from kefu.serving.deployment import Deployment
from kefu.serving.policy_files import policy_source
from kefu.serving.taxonomy import HEADS
from kefu.training.calibration_metrics import ECE_BINS
from kefu.training.data.loader import LabelledData
from kefu.training.evaluation import plots
from kefu.training.evaluation.baseline import HeadBaseline, fit_head_baseline
from kefu.training.evaluation.bootstrap import uncertainty_block
from kefu.training.evaluation.conversations import conversation_block
from kefu.training.evaluation.escalation import escalation_block
from kefu.training.evaluation.head_metrics import (
    MIN_SUPPORT,
    HeadGold,
    baseline_head,
    baseline_predictions,
    by_source,
    head_gold,
    int8_head,
    model_head,
    scored,
)
from kefu.training.evaluation.inference import (
    EvaluationRun,
    calibrated_probabilities,
    raw_probabilities,
    run_deployment,
)
from kefu.training.evaluation.politeness import politeness_block
from kefu.training.evaluation.public_dev import PublicSet, evaluate_public_sets


@dataclass
class TestSet:
    name: str  # key of the set's block in metrics.json ("seed", "real")
    data: LabelledData


@dataclass
class TrainingData:
    """What the baseline is fitted on: the bundle's training files, with their draw weights."""

    data: LabelledData
    weights: list[float] | None = None  # per row; None = 1 each

    @property
    def source(self) -> str:
        return self.data.source


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    # set name -> kind ("confusion", "reliability") -> head -> PNG
    figures: dict[str, dict[str, dict[str, Path]]] = field(default_factory=dict)


@dataclass
class Models:
    fp32: Deployment
    int8: Deployment | None
    baselines: dict[str, HeadBaseline | None]
    policy_source: str  # names the routing policy: its file, or "bundle" (`policy_source`)
    policy_sha256: str | None = None  # of the file's bytes, or the bundle's sealed policy.yaml


def evaluate_bundle(
    bundle_dir: str | Path,
    test_sets: Sequence[TestSet],
    out_dir: str | Path,
    *,
    train_data: TrainingData,
    public_sets: list[PublicSet] | None = None,
    threads: int | None = None,
    min_support: int = MIN_SUPPORT,
    lead: str | None = None,
    policy: str | Path | None = None,
) -> EvaluationResult:
    """Score the bundle on every set, fit and score the baseline, draw figures into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bundle = read_bundle(bundle_dir)
    if not test_sets:
        raise DataError("no test set to evaluate")
    for test_set in test_sets:
        if not test_set.data.rows:
            raise DataError(
                "no usable rows to evaluate (every row was rejected)", file=test_set.data.source
            )
    names = [test_set.name for test_set in test_sets]
    if len(set(names)) != len(names):
        raise DataError(f"test set names must differ, got {names}")
    seconds: dict[str, float] = {}
    models = _timed(seconds, "load", _load_models, bundle, train_data, threads, policy)
    blocks, figures = {}, {}
    for position, test_set in enumerate(test_sets):
        prefix = "" if position == 0 else f"{test_set.name}_"
        blocks[test_set.name], figures[test_set.name] = _timed(
            seconds, test_set.name, _evaluate_set, bundle, models, test_set, out, prefix,
            min_support,
        )  # fmt: skip
    metrics: dict[str, Any] = dict(blocks[names[0]])
    metrics |= {name: blocks[name] for name in names[1:]}
    metrics |= {
        "test_sets": names,
        "lead": lead if lead in names else names[0],
        "bundle": {
            "model_version": bundle.manifest.model_version,
            "base_model": bundle.manifest.base_model,
            "default_variant": bundle.manifest.default_variant,
            "evaluated_variant": "fp32",
        },
        "train_data": {"file": train_data.source, "n": len(train_data.data.rows)},
        "ece_bins": ECE_BINS,
        "min_support": min_support,
    }
    if public_sets is not None:
        metrics["public_dev"] = _timed(
            seconds, "public_dev", evaluate_public_sets, models.fp32, public_sets
        )
    metrics["seconds"] = seconds  # wall time per stage
    return EvaluationResult(metrics=json_safe(metrics), figures=figures)


def _load_models(
    bundle: Bundle, train_data: TrainingData, threads: int | None, policy: str | Path | None
) -> Models:
    try:
        bundle.model_path("int8")
        int8 = Deployment.load(bundle.path, variant="int8", policy_path=policy, threads=threads)
    except BundleError:
        int8 = None
    baselines: dict[str, HeadBaseline | None] = {}
    for head in HEADS:
        known = set(bundle.labels[head])  # a label the bundle cannot output cannot be scored
        labels = [label if label in known else None for label in train_data.data.labels(head)]
        baselines[head] = (
            fit_head_baseline(
                head,
                train_data.data.texts(),
                labels,
                train_data.weights,
                bundle.manifest.text_normalization,
            )
            if any(labels)
            else None
        )
    fp32 = Deployment.load(bundle.path, variant="fp32", policy_path=policy, threads=threads)
    return Models(fp32, int8, baselines, policy_source(policy), _policy_sha256(bundle, policy))


def _policy_sha256(bundle: Bundle, policy: str | Path | None) -> str | None:
    """The content of the policy routed with, as the bundle's manifest pins its policy.yaml:
    two files of one name (a tuned.yaml per week) are told apart by it."""
    if policy is None:
        return bundle.manifest.files.get(POLICY)
    return sha256_file(Path(policy))


def _evaluate_set(
    bundle: Bundle, models: Models, test_set: TestSet, out: Path, prefix: str, min_support: int
) -> tuple[dict[str, Any], dict[str, dict[str, Path]]]:
    data, labels = test_set.data, bundle.labels
    texts = data.texts()
    golds = {head: head_gold(data, head, labels[head], bundle.trained(head)) for head in HEADS}
    outputs = run_deployment(models.fp32, texts, with_logits=True)
    calibrated = calibrated_probabilities(models.fp32.classifier, outputs)
    uncalibrated = raw_probabilities(outputs)
    block: dict[str, Any] = {"model": {}, "baseline": {}, "confusion": {}}
    baseline_predicted = {
        head: baseline_predictions(models.baselines[head], texts, labels[head]) for head in HEADS
    }
    figures: dict[str, dict[str, Path]] = {"confusion": {}, "reliability": {}}
    for head in HEADS:
        gold = golds[head]
        scores = scored(gold, outputs[head].predicted, labels[head])
        block["model"][head] = model_head(
            scores, gold, outputs[head], (calibrated[head], uncalibrated[head]),
            models.fp32.classifier.calibration[head], min_support,
        ) | {"trained": bundle.trained(head)}  # fmt: skip
        block["baseline"][head] = baseline_head(
            models.baselines[head], baseline_predicted[head], gold, labels[head], min_support
        )
        block["confusion"][head] = {
            "labels": list(labels[head]),
            "matrix": scores.confusion.tolist(),
        }
        if not scores.n:  # no labelled row: an empty matrix and curve would read as data
            continue
        title = f"{test_set.name} {head} (n={scores.n})"
        figures["confusion"][head] = plots.plot_confusion(
            scores.confusion,
            labels[head],
            f"{title}: confusion",
            out / f"{prefix}confusion_{head}.png",
        )
        curves = {
            "calibrated": (calibrated[head][gold.rows], gold.gold),
            "temperature 1": (uncalibrated[head][gold.rows], gold.gold),
        }
        figures["reliability"][head] = plots.plot_reliability(
            curves, f"{title}: reliability", out / f"{prefix}reliability_{head}.png"
        )
    int8_outputs = (
        run_deployment(models.int8, texts, with_logits=True) if models.int8 is not None else None
    )
    block["int8"] = _int8_block(models, block, golds, outputs, int8_outputs, labels, min_support)
    block["n"] = len(texts)
    block["data"] = {
        "file": data.source,
        "n": len(data.rows),
        "rejected": len(data.rejects),
        "hash": data.content_hash(),
    }
    block["uncertainty"] = uncertainty_block(
        data,
        golds,
        {head: outputs[head].predicted for head in HEADS},
        baseline_predicted,
        min_support,
    )
    sources = by_source(data, golds, outputs.heads, labels, min_support)
    if sources:
        block["by_source"] = sources
    routed_with = {"policy": models.policy_source, "policy_sha256": models.policy_sha256}
    block["escalation"] = (
        escalation_block(data, outputs.decisions, models.fp32.policy) | routed_with
    )
    # INT8 moves predictions near a label boundary, so it can hand over other messages than fp32,
    # and serving runs it where it is the bundle's default variant; null: no INT8 model
    block["int8_escalation"] = None
    if models.int8 is not None and int8_outputs is not None:
        block["int8_escalation"] = (
            escalation_block(data, int8_outputs.decisions, models.int8.policy) | routed_with
        )
    block["politeness"] = politeness_block(models.fp32, texts, outputs)
    conversations = conversation_block(data, outputs.predictions, models.fp32.policy)
    if conversations is not None:
        block["conversations"] = conversations | routed_with
    return block, figures


def _int8_block(
    models: Models,
    block: dict[str, Any],
    golds: dict[str, HeadGold],
    fp32: EvaluationRun,
    outputs: EvaluationRun | None,  # the INT8 model's run over the same texts
    labels: dict[str, tuple[str, ...]],
    min_support: int,
) -> dict[str, Any]:
    """INT8 vs fp32 per head; every value null when the bundle ships no INT8 model."""
    if models.int8 is None or outputs is None:
        return {head: {"macro_f1": None, "available": False} for head in HEADS}
    calibrated = calibrated_probabilities(models.int8.classifier, outputs)
    return {
        head: int8_head(
            scored(golds[head], outputs[head].predicted, labels[head]),
            block["model"][head]["macro_f1"],
            golds[head],
            outputs[head],
            fp32[head],
            calibrated[head],
            min_support,
        )
        for head in HEADS
    }


def _timed(seconds: dict[str, float], stage: str, function: Any, *args: Any) -> Any:
    started = time.perf_counter()
    result = function(*args)
    seconds[stage] = round(time.perf_counter() - started, 1)
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
