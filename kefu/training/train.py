"""Fine-tune the three-head classifier and write a validated bundle: the one training story.

Usage: `kefu train --config training/configs/default.yaml --out models/default`, or from
Python `train(load_config(path), Path("models/default"))`.

The story, top to bottom: config (seeds, threads) -> data (loader, serving's TextEncoder,
tokenizer parity) -> model (base encoder + three heads) -> loop (early stopping on dev
macro-F1) -> export (ONNX + INT8, parity checks) -> calibrate (temperatures and abstention on
dev, from the variant serving will run) -> save (`write_bundle`, manifest, model
card; `kefu evaluate` adds test metrics later).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from kefu.serving.bundle.reader import Bundle
from kefu.serving.bundle.schema import HeadCalibration, Manifest
from kefu.serving.bundle.writer import check_bundle_target
from kefu.serving.taxonomy import HEADS, Taxonomy, load_taxonomy
from kefu.serving.tokenization import TextEncoder
from kefu.training.base_model import ResolvedBaseModel, base_model_source, resolve_base_model
from kefu.training.base_tokenizer import base_tokenizer_json
from kefu.training.calibrate import HeadCalibrationReport, calibrate_heads
from kefu.training.config import TrainConfig
from kefu.training.data.loader import LabelledRow
from kefu.training.data.splits import load_splits
from kefu.training.export import check_tokenizer_parity
from kefu.training.head_plan import plan_heads, thin_classes
from kefu.training.loop import History, fit
from kefu.training.model import (
    MultiHeadClassifier,
    MultiHeadLoss,
    class_weight_tensor,
    load_classifier,
)
from kefu.training.run_outputs import Graphs, export_graphs, save_bundle
from kefu.training.sampling import EncodedSplit, encode_split


@dataclass
class TrainResult:
    bundle: Bundle
    summary: dict[str, Any]  # what metrics.json's "training" section holds


def train(
    config: TrainConfig,
    out_dir: Path,
    *,
    taxonomy: Taxonomy | None = None,
    log: Callable[[str], None] = print,
    show_progress: bool = True,
) -> TrainResult:
    started = time.perf_counter()
    check_bundle_target(out_dir)  # now, not after the training it would throw away
    base_model_source(config.base_model)  # a bad base model, too, before any data is read
    # 1. config: everything random is seeded; torch uses every core unless told otherwise
    _seed_and_set_threads(config)
    taxonomy = taxonomy or load_taxonomy()

    # 2. data, tokenised by serving's encoder; the base model's own tokenizer must agree
    splits = load_splits(config, taxonomy, log)
    base = resolve_base_model(config.base_model, log=log)
    work = Path(tempfile.mkdtemp(prefix="kefu-train-"))
    try:
        data = _encode_data(splits, base.path, work, config, taxonomy, log)
        config, trained, untrained, notes = plan_heads(config, data.train_set, taxonomy, log)
        notes += thin_classes(data.train_set, taxonomy, trained, log)

        # 3. model: pretrained encoder, new heads, loss weighted per head (and per class)
        head_sizes = {head: len(taxonomy.labels(head)) for head in HEADS}
        model, loss_fn = _build_model(config, base.path, head_sizes, data.train_set)

        # 4. loop: keeps the weights of the best dev evaluation
        history = _run_loop(model, data, config, loss_fn, log, show_progress)

        # 5. export: fp32 must reproduce torch; INT8 becomes the default only if it keeps F1
        graphs = export_graphs(
            model, data.train_set, data.dev_set, data.pad_id, config, head_sizes, trained, work, log
        )

        # 6. calibrate what serving runs: temperatures and abstention rules from the default
        # variant's dev logits (INT8 shifts logits a little; thresholds must fit its scores)
        calibrated = _calibrate(graphs.dev_logits, data.dev_set, config, trained, untrained)

        # 7. save: one validated bundle
        summary = _summary(started, history, data, base, calibrated.reports, graphs)
        notes += graphs.notes + calibrated.notes
        version = config.model_version or default_version(data.data_hash, graphs, calibrated.heads)
        manifest = _manifest(config, version, base.name, data.data_hash, graphs, notes, untrained)
        bundle = save_bundle(
            out_dir, manifest, summary, config=config, taxonomy=taxonomy, model=model,
            base_dir=base.path, tokenizer_json=data.tokenizer_json, graphs=graphs,
            calibration=calibrated.heads, work=work,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(
        f"bundle {out_dir} written ({manifest.model_version}, default {graphs.default_variant}) "
        f"in {time.perf_counter() - started:.0f}s"
    )
    return TrainResult(bundle, summary)


class _Data(NamedTuple):
    tokenizer_json: Path  # the base model's tokenizer, as serving's TextEncoder reads it
    pad_id: int  # serving's TextEncoder's padding id
    train_set: EncodedSplit
    dev_set: EncodedSplit
    parity_texts: int  # texts on which the base model's own tokenizer gave the same ids
    data_hash: str  # sha256 over the training files


class _Calibrated(NamedTuple):
    heads: dict[str, HeadCalibration]
    reports: dict[str, HeadCalibrationReport]
    notes: list[str]  # heads whose abstention target was not met


def _seed_and_set_threads(config: TrainConfig) -> None:
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads or os.cpu_count() or 1)


def _encode_data(
    splits: tuple[list[LabelledRow], list[float], list[LabelledRow], str],
    base_dir: Path,
    work: Path,
    config: TrainConfig,
    taxonomy: Taxonomy,
    log: Callable[[str], None],
) -> _Data:
    train_rows, train_weights, dev_rows, data_hash = splits
    tokenizer_json = base_tokenizer_json(base_dir, work)
    encoder = TextEncoder.from_file(tokenizer_json, config.max_length, config.text_normalization)
    train_set = encode_split(
        [r.text for r in train_rows],
        [r.labels for r in train_rows],
        encoder,
        taxonomy,
        weights=train_weights if config.train_weights else None,
    )
    dev_set = encode_split(
        [r.text for r in dev_rows], [r.labels for r in dev_rows], encoder, taxonomy
    )
    parity_texts = check_tokenizer_parity(base_dir, encoder, train_set.texts + dev_set.texts)
    log(
        f"data: {len(train_set)} train / {len(dev_set)} dev rows; tokenizer parity on "
        f"{parity_texts} texts"
    )
    return _Data(tokenizer_json, encoder.pad_id, train_set, dev_set, parity_texts, data_hash)


def _build_model(
    config: TrainConfig, base_dir: Path, head_sizes: dict[str, int], train_set: EncodedSplit
) -> tuple[MultiHeadClassifier, MultiHeadLoss]:
    model = load_classifier(base_dir, head_sizes, config.dropout)
    loss_fn = MultiHeadLoss(
        config.loss_weights,
        {
            head: class_weight_tensor(train_set.labels[head], size, config.class_weights)
            for head, size in head_sizes.items()
        },
        config.label_smoothing,
    )
    return model, loss_fn


def _run_loop(
    model: MultiHeadClassifier,
    data: _Data,
    config: TrainConfig,
    loss_fn: MultiHeadLoss,
    log: Callable[[str], None],
    show_progress: bool,
) -> History:
    history = fit(
        model, data.train_set, data.dev_set, config, data.pad_id, loss_fn, log, show_progress
    )
    log(
        f"training: {history.steps} steps in {history.seconds:.0f}s "
        f"({history.forward_precision} forward), {history.stopped_because}; "
        f"best at step {history.best_step}"
    )
    return history


def _calibrate(
    dev_logits: dict[str, np.ndarray],
    dev_set: EncodedSplit,
    config: TrainConfig,
    trained: tuple[str, ...],
    untrained: list[str],
) -> _Calibrated:
    calibration, reports = calibrate_heads(
        {head: dev_logits[head] for head in trained},
        dev_set.labels,
        config.target_precision,
        config.max_abstain_rate,
    )
    calibration |= {head: HeadCalibration() for head in untrained}
    notes = [
        f"{head}: no abstention rule reaches precision {report.target_precision} on dev; "
        f"kept the most precise one ({report.answered_precision:.3f}, abstains on "
        f"{report.abstain_rate:.0%})"
        for head, report in reports.items()
        if not report.target_met
    ]
    return _Calibrated(calibration, reports, notes)


def _summary(
    started: float,
    history: History,
    data: _Data,
    base: ResolvedBaseModel,
    calibration_reports: dict[str, HeadCalibrationReport],
    graphs: Graphs,
) -> dict[str, Any]:
    return {
        "seconds_total": round(time.perf_counter() - started, 1),
        "seconds_loop": round(history.seconds, 1),
        "steps": history.steps,
        "forward_precision": history.forward_precision,
        "best_step": history.best_step,
        "stopped_because": history.stopped_because,
        "threads": torch.get_num_threads(),
        "rows": {"train": len(data.train_set), "dev": len(data.dev_set)},
        "rows_per_epoch": round(data.train_set.rows_per_epoch),
        "base_model": {"name": base.name, "origin": base.origin},
        "base_model_licence": base.licence,
        "dev_macro_f1": history.best.dev_macro_f1,
        "evaluations": [asdict(e) for e in history.evaluations],
        "calibration": {head: asdict(report) for head, report in calibration_reports.items()},
        "onnx_parity": asdict(graphs.parity),
        "lexical": graphs.lexical,
        "tokenizer_parity_texts": data.parity_texts,
        "int8_dev_macro_f1": asdict(graphs.int8_dev_macro_f1) if graphs.int8_dev_macro_f1 else None,
        "default_variant": graphs.default_variant,
    }


def _manifest(
    config: TrainConfig,
    model_version: str,
    base_name: str,
    data_hash: str,
    graphs: Graphs,
    notes: list[str],
    untrained: list[str],
) -> Manifest:
    return Manifest(
        model_version=model_version,
        base_model=base_name,
        max_length=config.max_length,
        text_normalization=config.text_normalization,
        default_variant=graphs.default_variant,
        data_hash=data_hash,
        notes=notes,
        untrained_heads=list(untrained),
    )


def default_version(data_hash: str, graphs: Graphs, calibration: dict[str, HeadCalibration]) -> str:
    """`kefu-<data hash>-<model hash>`, 8 hex digits each: the model hash covers the fp32 graph's
    bytes (the weights, before the version is stamped into its metadata), the calibration and
    the default variant. Named by what it holds, not by when it was written, so training the
    same data with the same config again gives the same version and byte-identical ONNX files,
    and another seed or setting another version."""
    digest = hashlib.sha256(graphs.fp32.read_bytes())
    digest.update(
        json.dumps(
            {head: asdict(calibration[head]) for head in sorted(calibration)}, sort_keys=True
        ).encode("utf-8")
    )
    digest.update(graphs.default_variant.encode("utf-8"))
    return f"kefu-{data_hash[:8]}-{digest.hexdigest()[:8]}"
