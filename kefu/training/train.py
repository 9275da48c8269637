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

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kefu.serving.bundle import (
    HF_DIR,
    MODEL_FP32,
    MODEL_INT8,
    ROW_BY_ROW_VARIANTS,
    Bundle,
    HeadCalibration,
    Manifest,
    update_bundle,
    write_bundle,
)
from kefu.serving.taxonomy import HEADS, Taxonomy, load_taxonomy
from kefu.serving.tokenization import TextEncoder
from kefu.training.base_model import resolve_base_model
from kefu.training.base_tokenizer import base_tokenizer_json
from kefu.training.calibrate import calibrate_heads
from kefu.training.config import TrainConfig
from kefu.training.data.splits import load_splits
from kefu.training.evaluation.model_card import render_model_card
from kefu.training.export import (
    check_onnx_parity,
    check_tokenizer_parity,
    compare_int8,
    export_onnx,
    onnx_logits,
    quantize_int8,
)
from kefu.training.hf_export import save_hf, stamp_onnx_metadata
from kefu.training.lexical import blend_into_graph, check_blend, fit_lexical
from kefu.training.loop import fit
from kefu.training.model import MultiHeadLoss, class_weight_tensor, load_classifier
from kefu.training.sampling import encode_split, mixed_batches, untrained_heads

# rows per batch when the exported graphs score the dev split (mixed lengths: padded rows)
DEV_BATCH_SIZE = 64


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
    # 1. config: everything random is seeded; torch uses every core unless told otherwise
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    taxonomy = taxonomy or load_taxonomy()

    # 2. data, tokenised by serving's encoder; the base model's own tokenizer must agree
    train_rows, train_weights, dev_rows, data_hash = load_splits(config, taxonomy, log)
    base = resolve_base_model(config.base_model, log=log)
    work = Path(tempfile.mkdtemp(prefix="kefu-train-"))
    try:
        tokenizer_json = base_tokenizer_json(base.path, work)
        encoder = TextEncoder.from_file(tokenizer_json, config.max_length)
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
        parity_texts = check_tokenizer_parity(base.path, encoder, train_set.texts + dev_set.texts)
        log(
            f"data: {len(train_set)} train / {len(dev_set)} dev rows; tokenizer parity on "
            f"{parity_texts} texts"
        )
        # a head with (almost) no labels is not trained: it would predict noise that drives
        # routing (a random urgency head sends messages to P0); serving skips it instead
        untrained = untrained_heads(train_set, config.min_head_labels)
        notes: list[str] = []
        if untrained:
            config = replace(
                config,
                loss_weights={
                    h: 0.0 if h in untrained else w for h, w in config.loss_weights.items()
                },
            )
            notes.append(
                f"not trained (fewer than {config.min_head_labels} labelled training rows): "
                f"{', '.join(untrained)}; serving returns no label for them and routing ignores them"
            )
            log(f"warning: {notes[-1]}")

        # 3. model: pretrained encoder, new heads, loss weighted per head (and per class)
        head_sizes = {head: len(taxonomy.labels(head)) for head in HEADS}
        model = load_classifier(base.path, head_sizes, config.dropout)
        loss_fn = MultiHeadLoss(
            config.loss_weights,
            {
                head: class_weight_tensor(train_set.labels[head], size, config.class_weights)
                for head, size in head_sizes.items()
            },
            config.label_smoothing,
        )

        # 4. loop: keeps the weights of the best dev evaluation
        history = fit(
            model, train_set, dev_set, config, encoder.pad_id, loss_fn, log, show_progress
        )
        log(
            f"training: {history.steps} steps in {history.seconds:.0f}s "
            f"({history.forward_precision} forward), {history.stopped_because}; "
            f"best at step {history.best_step}"
        )

        # 5. export: fp32 must reproduce torch; INT8 becomes the default only if it keeps F1
        onnx_fp32 = export_onnx(model, work / "encoder.onnx", config.max_length)
        # each graph scores dev once; parity, the INT8 comparison and calibration share it
        dev_batches = mixed_batches(len(dev_set), DEV_BATCH_SIZE)
        fp32_dev = onnx_logits(onnx_fp32, dev_set, dev_batches, encoder.pad_id)
        parity = check_onnx_parity(
            model, fp32_dev, dev_set, dev_batches, encoder.pad_id, config.parity_tolerance
        )
        trained = tuple(head for head in HEADS if head not in untrained)
        # 5b. the lexical model joins the graph; everything after scores the blend
        lexical_summary = None
        if config.lexical_weight > 0:
            lexical_started = time.perf_counter()
            lexical = fit_lexical(train_set, head_sizes, trained)
            if lexical is not None:
                onnx_fp32 = blend_into_graph(
                    onnx_fp32, lexical, config.lexical_weight, work / MODEL_FP32
                )
                encoder_dev = fp32_dev
                fp32_dev = onnx_logits(onnx_fp32, dev_set, dev_batches, encoder.pad_id)
                lexical_summary = {
                    "weight": config.lexical_weight,
                    "ngrams": len(lexical.ngrams),
                    "heads": list(lexical.heads),
                    "max_abs_diff": check_blend(
                        fp32_dev, encoder_dev, lexical, dev_set.ids, config.lexical_weight
                    ),
                    "seconds": round(time.perf_counter() - lexical_started, 1),
                }
                log(
                    f"lexical model: {len(lexical.ngrams)} token n-grams, "
                    f"{config.lexical_weight:.0%} of the served probabilities"
                )
        onnx_int8, int8, default_variant = None, None, "fp32"
        dev_logits = fp32_dev
        if config.int8:
            onnx_int8 = quantize_int8(onnx_fp32, work / MODEL_INT8)
            # scored as serving runs it: row by row, if rows of one call share activation scales
            int8_batches = (
                mixed_batches(len(dev_set), 1) if "int8" in ROW_BY_ROW_VARIANTS else dev_batches
            )
            int8_dev = onnx_logits(onnx_int8, dev_set, int8_batches, encoder.pad_id)
            int8 = compare_int8(fp32_dev, int8_dev, dev_set.labels, heads=trained)
            if int8.within(config.int8_max_drop):
                default_variant, dev_logits = "int8", int8_dev
            else:
                notes.append(
                    f"INT8 loses more than {config.int8_max_drop} macro-F1 points on a head on "
                    f"dev (INT8 minus fp32: {_points(int8.drop_points)}); fp32 is the default "
                    "variant"
                )

        # 6. calibrate what serving runs: temperatures and abstention rules from the default
        # variant's dev logits (INT8 shifts logits a little; thresholds must fit its scores)
        calibration, calibration_reports = calibrate_heads(
            {head: dev_logits[head] for head in trained},
            dev_set.labels,
            config.target_precision,
            config.max_abstain_rate,
        )
        calibration |= {head: HeadCalibration() for head in untrained}
        notes += [
            f"{head}: no abstention rule reaches precision {report.target_precision} on dev; "
            f"kept the most precise one ({report.answered_precision:.3f}, abstains on "
            f"{report.abstain_rate:.0%})"
            for head, report in calibration_reports.items()
            if not report.target_met
        ]

        # 7. save: one validated bundle
        summary = {
            "seconds_total": round(time.perf_counter() - started, 1),
            "seconds_loop": round(history.seconds, 1),
            "steps": history.steps,
            "forward_precision": history.forward_precision,
            "best_step": history.best_step,
            "stopped_because": history.stopped_because,
            "threads": torch.get_num_threads(),
            "rows": {"train": len(train_set), "dev": len(dev_set)},
            "rows_per_epoch": round(train_set.rows_per_epoch),
            "base_model": {"name": base.name, "origin": base.origin},
            "base_model_licence": base.licence,
            "dev_macro_f1": history.best.dev_macro_f1,
            "evaluations": [asdict(e) for e in history.evaluations],
            "calibration": {head: asdict(report) for head, report in calibration_reports.items()},
            "onnx_parity": asdict(parity),
            "lexical": lexical_summary,
            "tokenizer_parity_texts": parity_texts,
            "int8_dev_macro_f1": asdict(int8) if int8 else None,
            "default_variant": default_variant,
        }
        manifest = Manifest(
            model_version=config.model_version or default_version(data_hash),
            base_model=base.name,
            max_length=config.max_length,
            default_variant=default_variant,
            data_hash=data_hash,
            notes=notes,
            untrained_heads=list(untrained),
        )
        labels = {head: taxonomy.labels(head) for head in HEADS}
        for graph in (onnx_fp32, onnx_int8):
            if graph is not None:
                stamp_onnx_metadata(graph, labels, manifest.model_version)
        hf_dir = save_hf(
            model, base.path, labels, work / HF_DIR,
            model_version=manifest.model_version, untrained_heads=untrained,
        )  # fmt: skip
        bundle = write_bundle(
            out_dir,
            manifest=manifest,
            onnx_fp32=onnx_fp32,
            onnx_int8=onnx_int8,
            tokenizer_json=tokenizer_json,
            taxonomy=taxonomy,
            calibration=calibration,
            policy=taxonomy.routing,
            metrics={"training": summary},
            training_config=config.to_dict(),
            hf_dir=hf_dir,
        )
        bundle = update_bundle(bundle.path, model_card=render_model_card(bundle))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(
        f"bundle {out_dir} written ({manifest.model_version}, default {default_variant}) in "
        f"{time.perf_counter() - started:.0f}s"
    )
    return TrainResult(bundle, summary)


def default_version(data_hash: str) -> str:
    return f"kefu-{datetime.now(UTC):%Y%m%d-%H%M}-{data_hash[:8]}"


def _points(drops: dict[str, float]) -> str:
    return ", ".join(f"{head} {-drop:+.2f}" for head, drop in drops.items())
