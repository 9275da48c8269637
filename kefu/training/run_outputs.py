"""What a training run writes (ONNX graphs, the bundle): kept apart so train.py reads as one story."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from kefu.serving.bundle.reader import Bundle
from kefu.serving.bundle.schema import (
    HF_DIR,
    MODEL_FP32,
    MODEL_INT8,
    ROW_BY_ROW_VARIANTS,
    HeadCalibration,
    Manifest,
)
from kefu.serving.bundle.writer import update_bundle, write_bundle
from kefu.serving.taxonomy import HEADS, Taxonomy
from kefu.training.config import TrainConfig
from kefu.training.evaluation.model_card import render_model_card
from kefu.training.export import (
    Int8Result,
    ParityResult,
    check_onnx_parity,
    compare_int8,
    export_onnx,
    onnx_logits,
    quantize_int8,
)
from kefu.training.hf_export import save_hf, stamp_onnx_metadata
from kefu.training.lexical import fit_lexical
from kefu.training.lexical_graph import blend_into_graph, check_blend
from kefu.training.model import MultiHeadClassifier
from kefu.training.sampling import EncodedSplit, mixed_batches

# rows per batch when the exported graphs score the dev split (mixed lengths: padded rows)
DEV_BATCH_SIZE = 64


class Graphs(NamedTuple):
    fp32: Path
    int8: Path | None  # None when the config turns INT8 off
    default_variant: str
    dev_logits: dict[str, np.ndarray]  # (n, k) per head, default variant's: calibration fits them
    parity: ParityResult  # the fp32 graph (before any blend) against torch on dev
    lexical: dict[str, Any] | None  # metrics.json's "lexical" section; None without a blend
    int8_dev_macro_f1: Int8Result | None
    notes: list[str]  # for the manifest


class _Fp32Graph(NamedTuple):
    path: Path
    dev_logits: dict[str, np.ndarray]  # (n, k) per head, scored once on dev_batches
    dev_batches: list[np.ndarray]
    parity: ParityResult
    lexical: dict[str, Any] | None = None


def export_graphs(
    model: MultiHeadClassifier,
    train_set: EncodedSplit,
    dev_set: EncodedSplit,
    pad_id: int,
    config: TrainConfig,
    head_sizes: dict[str, int],
    trained: tuple[str, ...],
    work: Path,
    log: Callable[[str], None],
) -> Graphs:
    """Step 5 of `train.py`: the fp32 graph checked against torch, the lexical blend, INT8."""
    fp32 = _export_fp32(model, dev_set, pad_id, config, work)
    # 5b. the lexical model joins the graph; everything after scores the blend
    if config.lexical_weight > 0:
        fp32 = _blend_lexical(
            fp32, train_set, dev_set, pad_id, config, head_sizes, trained, work, log
        )
    return _choose_variant(fp32, dev_set, pad_id, config, trained, work)


def _export_fp32(
    model: MultiHeadClassifier, dev_set: EncodedSplit, pad_id: int, config: TrainConfig, work: Path
) -> _Fp32Graph:
    onnx_fp32 = export_onnx(model, work / "encoder.onnx", config.max_length)
    # each graph scores dev once; parity, the INT8 comparison and calibration share it
    dev_batches = mixed_batches(len(dev_set), DEV_BATCH_SIZE)
    fp32_dev = onnx_logits(onnx_fp32, dev_set, dev_batches, pad_id)
    parity = check_onnx_parity(
        model, fp32_dev, dev_set, dev_batches, pad_id, config.parity_tolerance
    )
    return _Fp32Graph(onnx_fp32, fp32_dev, dev_batches, parity)


def _blend_lexical(
    fp32: _Fp32Graph,
    train_set: EncodedSplit,
    dev_set: EncodedSplit,
    pad_id: int,
    config: TrainConfig,
    head_sizes: dict[str, int],
    trained: tuple[str, ...],
    work: Path,
    log: Callable[[str], None],
) -> _Fp32Graph:
    """`fp32` with the lexical model blended in; unchanged when there is nothing to blend."""
    lexical_started = time.perf_counter()
    lexical = fit_lexical(train_set, head_sizes, trained)
    if lexical is None:
        return fp32
    onnx_fp32 = blend_into_graph(fp32.path, lexical, config.lexical_weight, work / MODEL_FP32)
    fp32_dev = onnx_logits(onnx_fp32, dev_set, fp32.dev_batches, pad_id)
    lexical_summary = {
        "weight": config.lexical_weight,
        "ngrams": len(lexical.ngrams),
        "heads": list(lexical.heads),
        "max_abs_diff": check_blend(
            fp32_dev, fp32.dev_logits, lexical, dev_set.ids, config.lexical_weight
        ),
        "seconds": round(time.perf_counter() - lexical_started, 1),
    }
    log(
        f"lexical model: {len(lexical.ngrams)} token n-grams, "
        f"{config.lexical_weight:.0%} of the served probabilities"
    )
    return fp32._replace(path=onnx_fp32, dev_logits=fp32_dev, lexical=lexical_summary)


def _choose_variant(
    fp32: _Fp32Graph,
    dev_set: EncodedSplit,
    pad_id: int,
    config: TrainConfig,
    trained: tuple[str, ...],
    work: Path,
) -> Graphs:
    onnx_int8: Path | None = None
    int8: Int8Result | None = None
    default_variant, dev_logits = "fp32", fp32.dev_logits
    notes: list[str] = []
    if config.int8:
        onnx_int8 = quantize_int8(fp32.path, work / MODEL_INT8)
        # scored as serving runs it: row by row, if rows of one call share activation scales
        int8_batches = (
            mixed_batches(len(dev_set), 1) if "int8" in ROW_BY_ROW_VARIANTS else fp32.dev_batches
        )
        int8_dev = onnx_logits(onnx_int8, dev_set, int8_batches, pad_id)
        int8 = compare_int8(fp32.dev_logits, int8_dev, dev_set.labels, heads=trained)
        if int8.within(config.int8_max_drop):
            default_variant, dev_logits = "int8", int8_dev
        else:
            notes.append(
                f"INT8 loses more than {config.int8_max_drop} macro-F1 points on a head on "
                f"dev (INT8 minus fp32: {_points(int8.drop_points)}); fp32 is the default "
                "variant"
            )
    return Graphs(
        fp32=fp32.path,
        int8=onnx_int8,
        default_variant=default_variant,
        dev_logits=dev_logits,
        parity=fp32.parity,
        lexical=fp32.lexical,
        int8_dev_macro_f1=int8,
        notes=notes,
    )


def save_bundle(
    out_dir: Path,
    manifest: Manifest,
    summary: dict[str, Any],
    *,
    config: TrainConfig,
    taxonomy: Taxonomy,
    model: MultiHeadClassifier,
    base_dir: Path,
    tokenizer_json: Path,
    graphs: Graphs,
    calibration: dict[str, HeadCalibration],
    work: Path,
) -> Bundle:
    """Every artefact carries the labels and the model version; then one validated bundle."""
    labels = {head: taxonomy.labels(head) for head in HEADS}
    for graph in (graphs.fp32, graphs.int8):
        if graph is not None:
            stamp_onnx_metadata(graph, labels, manifest.model_version)
    hf_dir = save_hf(
        model, base_dir, labels, work / HF_DIR,
        model_version=manifest.model_version, untrained_heads=manifest.untrained_heads,
    )  # fmt: skip
    bundle = write_bundle(
        out_dir,
        manifest=manifest,
        onnx_fp32=graphs.fp32,
        onnx_int8=graphs.int8,
        tokenizer_json=tokenizer_json,
        taxonomy=taxonomy,
        calibration=calibration,
        policy=taxonomy.routing,
        metrics={"training": summary},
        training_config=config.to_dict(),
        hf_dir=hf_dir,
    )
    return update_bundle(bundle.path, model_card=render_model_card(bundle))


def _points(drops: dict[str, float]) -> str:
    return ", ".join(f"{head} {-drop:+.2f}" for head, drop in drops.items())
