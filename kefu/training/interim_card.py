"""The model card `kefu train` writes; `kefu evaluate` later replaces it with test metrics.

It already states what a card must: the data, the base model and its licence, how training
went on dev, calibration and the export checks, intended use and known limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kefu.serving.bundle import Manifest
from kefu.serving.taxonomy import HEADS
from kefu.training.base_model import ResolvedBaseModel
from kefu.training.config import TrainConfig


def interim_model_card(
    manifest: Manifest, config: TrainConfig, base: ResolvedBaseModel, summary: Mapping[str, Any]
) -> str:
    calibration = summary["calibration"]
    int8 = summary.get("int8_dev_macro_f1")
    lines = [
        f"# kefu triage model {manifest.model_version}",
        "",
        "Reads one Chinese e-commerce customer-service message and returns intent (21 labels), "
        "urgency (4) and emotion (5) with calibrated confidences, for kefu's routing.",
        "",
        "> Interim card written by `kefu train`: dev-set numbers only. Run `kefu evaluate "
        "--bundle DIR --data TEST_FILE` for test metrics, the TF-IDF baseline and public dev sets.",
        "",
        "## Base model and licence",
        f"- base model: `{base.name}` (resolved from {base.origin})",
        f"- licence: {base.licence}",
        "- the fine-tuned weights inherit the base model's terms.",
        "",
        "## Data",
        f"- train: `{config.train_data}` ({summary['rows']['train']} rows)",
        f"- dev: `{config.dev_data or 'held out from train'}` ({summary['rows']['dev']} rows)",
        f"- data hash (sha256 over the files): `{manifest.data_hash}`",
        "",
        "## Training",
        f"- {summary['steps']} steps, best at step {summary['best_step']} "
        f"({summary['stopped_because']}); {summary['seconds_loop']:.0f}s in the loop, "
        f"{summary['seconds_total']:.0f}s in all on {summary['threads']} CPU threads",
        f"- epochs {config.epochs}, batch {config.batch_size}, lr {config.lr}, head lr "
        f"{config.head_lr}, max length {config.max_length} tokens (head+tail truncation)",
        "",
        "| head | dev macro-F1 | temperature | ECE before | ECE after | threshold | margin | "
        "dev precision answered | abstain rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for head in HEADS:
        report = calibration[head]
        f1 = summary["dev_macro_f1"].get(head, float("nan"))
        lines.append(
            f"| {head} | {f1:.3f} | {report['temperature']:.3f} | {report['ece_before']:.3f} | "
            f"{report['ece_after']:.3f} | {report['threshold']:.3f} | {report['margin']:.3f} | "
            f"{report['answered_precision']:.3f} (target {report['target_precision']}) | "
            f"{report['abstain_rate']:.3f} |"
        )
    lines += [
        "",
        "## Export checks (dev set)",
        f"- fp32 ONNX vs torch: max |logit diff| {summary['onnx_parity']['max_abs_diff']:.2e}, "
        f"{summary['onnx_parity']['argmax_mismatches']} argmax mismatches",
        f"- tokenizer parity (transformers vs serving): {summary['tokenizer_parity_texts']} texts "
        "identical",
    ]
    if int8:
        changes = ", ".join(
            f"{head} {100 * (int8['int8_macro_f1'][head] - int8['fp32_macro_f1'][head]):+.2f}"
            for head in HEADS
        )
        lines.append(f"- INT8 minus fp32 macro-F1, in points: {changes}")
    lines += [
        f"- default variant: {manifest.default_variant}",
        *(f"- note: {note}" for note in manifest.notes),
        "",
        "## Intended use and limits",
        "- Triage support for human agents: a queue, a priority and an escalation hint. It does "
        "not answer customers or decide refunds, account actions or complaints on its own.",
        "- Trained on a written-and-augmented seed corpus, not on real logs: expect lower "
        "accuracy on real customer text; retrain on your own labelled logs.",
        "- Chinese e-commerce service messages only.",
        "",
    ]
    return "\n".join(lines)
