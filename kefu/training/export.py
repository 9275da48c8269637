"""ONNX export of the three-head model, the INT8 variant, and the checks that gate both.

Opset 17 (LayerNorm as a single op, supported by every ONNX Runtime since 1.14). Batch and
sequence axes are dynamic so serving can batch messages of any length.

Checks, all on the dev set and all raising ExportCheckError (or reporting) before a bundle is
written:
- `check_onnx_parity`: fp32 ONNX vs torch logits, max |diff| <= tolerance and identical argmax,
  on batches in file order (`mixed_batches`: mixed lengths, so most rows are padded: a graph that traced the
  attention mask as a constant fails here);
- `compare_int8`: macro-F1 per head of the INT8 graph vs the fp32 graph (the caller decides
  what a drop means: training keeps fp32 as the default variant and says so);
- `check_tokenizer_parity`: the base model's own tokenizer (transformers) and serving's
  `TextEncoder` give identical ids on every text, head+tail truncation included.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kefu.errors import KefuError
from kefu.serving.bundle.schema import ONNX_INPUTS, ONNX_OUTPUTS
from kefu.serving.classifier import make_session
from kefu.serving.preview import preview
from kefu.serving.taxonomy import HEADS
from kefu.serving.tokenization import HEAD_SHARE, TextEncoder, normalize_text
from kefu.training.base_tokenizer import load_base_tokenizer
from kefu.training.lexical_graph import lexical_node_names
from kefu.training.model import MultiHeadClassifier, macro_f1, predict_logits
from kefu.training.sampling import EncodedSplit, collate

OPSET = 17


class ExportCheckError(KefuError):
    """The exported model or tokenizer does not reproduce what was trained."""

    code = "export_check_failed"


def export_onnx(model: MultiHeadClassifier, out_path: Path, max_length: int = 128) -> Path:
    """Trace `model` to ONNX at `out_path` with eager attention and a padded sample batch.

    Eager attention: transformers' SDPA path decides some masking branches in Python, which
    the tracer records as constants (TracerWarnings); eager attention is plain ops. The sample
    has a padded row for the same reason: nothing may be specialised to "no padding".
    """
    model.eval()
    input_ids = torch.full((2, 8), 5, dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in ONNX_INPUTS}
    dynamic_axes |= {name: {0: "batch"} for name in model.output_names}
    previous = model.encoder.config._attn_implementation
    model.encoder.set_attn_implementation("eager")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # remaining TracerWarnings are shape checks on static sizes; parity checks catch
            # anything that is not
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # aten::index with non-negative mask indices only (the warning is about negatives)
            warnings.filterwarnings("ignore", message="Exporting aten::index operator")
            torch.onnx.export(
                model,
                (input_ids, attention_mask, torch.zeros_like(input_ids)),
                str(out_path),
                input_names=list(ONNX_INPUTS),
                output_names=model.output_names,
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        model.encoder.set_attn_implementation(previous)
    return out_path


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic INT8 quantisation: int8 weights, activations quantised per call at run time.

    No calibration data needed, and 4-5x faster than fp32 on one core. Activation ranges are
    taken per call, so rows computed together share them: on the default model a row's INT8
    probabilities moved by up to 0.17 with its neighbours and 3.5% of dev messages changed label
    or route; serving therefore runs this graph row by row (bundle.ROW_BY_ROW_VARIANTS). Tried
    instead: static quantisation (calibrated ranges; 15% slower, 1.3 points less intent and
    emotion macro-F1 on real dev), 8-bit MatMulNBits (row-invariant, 2-3x slower than this here),
    leaving a group of MatMuls in fp32 (2-3% of messages still change; up to 2x slower), and one
    range per token (the graph rewritten to quantise each row itself, zero point 128, then
    MatMulIntegerToFloat): row-invariant and as close to fp32, but the unfused quantising ops
    cost what batching saves (one thread: 1.57 ms a message in groups of 8, 1.58 row by row with
    this graph, 2.0 alone). ORT also fuses a per-row scale into MatMulIntegerToFloat wrongly
    (it reads the scale per column), so such a graph must keep the row scale out of the product.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs a generic "consider pre-processing" hint at WARNING
    try:
        # per-channel weight scales: on the default model they halve the INT8 macro-F1 loss
        # (dev: 0.3-0.5 points per head per-tensor, 0.0-0.2 per-channel) at no speed cost
        # the lexical model (if blended in) stays fp32: its weights are read a few rows per
        # message, so quantising them would save space, not time
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=lexical_node_names(fp32_path),
        )
    finally:
        root.setLevel(level)
    return int8_path


def onnx_logits(
    onnx_path: Path, split: EncodedSplit, batches: list[np.ndarray], pad_id: int, threads: int = 0
) -> dict[str, np.ndarray]:
    """Logits per head from an ONNX file, (n, k) in split row order."""
    session = make_session(onnx_path, threads or None)
    names = [ONNX_OUTPUTS[head] for head in HEADS]
    out = {head: np.zeros((len(split), 0), dtype=np.float32) for head in HEADS}
    for rows in batches:
        feed = {name: tensor.numpy() for name, tensor in collate(split, rows, pad_id).items()}
        for head, logits in zip(HEADS, session.run(names, feed), strict=True):
            if out[head].shape[1] == 0:
                out[head] = np.zeros((len(split), logits.shape[1]), dtype=np.float32)
            out[head][rows] = logits
    return out


@dataclass
class ParityResult:
    max_abs_diff: float
    argmax_mismatches: int
    rows: int


def check_onnx_parity(
    model: MultiHeadClassifier,
    onnx: Mapping[str, np.ndarray],
    split: EncodedSplit,
    batches: list[np.ndarray],
    pad_id: int,
    tolerance: float = 1e-4,
) -> ParityResult:
    """fp32 ONNX logits (`onnx_logits` on `batches`) vs torch on the same batches.

    Raises ExportCheckError if off. The caller scores the graph once and hands the logits to
    every check that needs them (a dev pass over padded batches takes a third of a minute).
    """
    expected = predict_logits(model, split, batches, pad_id)
    actual = onnx
    diff = max(float(np.abs(expected[h] - actual[h]).max(initial=0.0)) for h in HEADS)
    mismatches = sum(
        int((expected[h].argmax(axis=1) != actual[h].argmax(axis=1)).sum()) for h in HEADS
    )
    result = ParityResult(diff, mismatches, len(split))
    if not diff <= tolerance or mismatches:  # NaN logits fail too
        raise ExportCheckError(
            f"ONNX export does not match torch on {len(split)} dev rows: max |logit diff| "
            f"{diff:.2e} (allowed {tolerance:.0e}), {mismatches} argmax mismatches; the graph "
            "probably traced a shape or mask as a constant; check the exporter warnings"
        )
    return result


@dataclass
class Int8Result:
    fp32_macro_f1: dict[str, float]  # trained heads with dev labels only
    int8_macro_f1: dict[str, float]

    @property
    def drop_points(self) -> dict[str, float]:
        """macro-F1 lost per checked head, in points (percent)."""
        return {
            h: 100 * (self.fp32_macro_f1[h] - self.int8_macro_f1[h]) for h in self.fp32_macro_f1
        }

    def within(self, max_drop_points: float) -> bool:
        return all(drop <= max_drop_points for drop in self.drop_points.values())


def compare_int8(
    fp32: Mapping[str, np.ndarray],
    int8: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    heads: tuple[str, ...] = HEADS,
) -> Int8Result:
    """macro-F1 per head of both graphs' logits on one split (rows with the head's label).

    Only `heads` (the trained ones) are compared, and only those with labels: an untrained
    head's scores mean nothing and a head without labels has none (NaN would fail the check).
    """
    checked = [head for head in heads if (labels[head] >= 0).any()]
    return Int8Result(
        {head: macro_f1(fp32[head], labels[head]) for head in checked},
        {head: macro_f1(int8[head], labels[head]) for head in checked},
    )


def check_tokenizer_parity(base_model_dir: Path, encoder: TextEncoder, texts: list[str]) -> int:
    """Assert the base model's transformers tokenizer and `encoder` give identical ids.

    Both see the NFKC-normalised text (normalising is serving's deliberate first step). The
    transformers side truncates with its own machinery (right truncation for the head, left
    truncation for the tail), so the head+tail rule is checked, not just re-run. Returns the
    number of texts checked.
    """
    tokenizer = load_base_tokenizer(base_model_dir)
    window = encoder.max_length - 2
    head = int(window * HEAD_SHARE)
    normalized = [normalize_text(text, encoder.normalization) for text in texts]
    served, _ = encoder.token_ids(texts)
    full = tokenizer(normalized, add_special_tokens=False)["input_ids"]
    for index, (text, ids) in enumerate(zip(normalized, full, strict=True)):
        if len(ids) > window:
            ids = _truncated(tokenizer, text, "right", head) + _truncated(
                tokenizer, text, "left", window - head
            )
        expected = [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]
        if expected != served[index]:
            raise ExportCheckError(
                f"tokenizer parity failed on text {index} ({preview(texts[index])}): "
                f"transformers gives {expected[:12]}..., serving's TextEncoder gives "
                f"{served[index][:12]}...; the bundle's tokenizer.json is not the base model's"
            )
    return len(texts)


def _truncated(tokenizer: Any, text: str, side: str, length: int) -> list[int]:
    tokenizer.truncation_side = side
    encoded = tokenizer(text, add_special_tokens=False, truncation=True, max_length=length)
    return list(encoded["input_ids"])
