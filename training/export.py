"""ONNX export of the three-head model, plus the INT8 dynamically quantised variant.

Opset 17 (LayerNorm as a single op, supported by every ONNX Runtime since 1.14). Batch and
sequence axes are dynamic so serving can batch messages of any length.
"""

from __future__ import annotations

from pathlib import Path

import torch

from serving.bundle import ONNX_INPUTS
from training.model import MultiHeadClassifier

OPSET = 17


def export_onnx(model: MultiHeadClassifier, out_path: Path, max_length: int = 128) -> Path:
    model.eval()
    sample = torch.ones((2, 8), dtype=torch.long)
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in ONNX_INPUTS}
    dynamic_axes |= {name: {0: "batch"} for name in model.output_names}
    with torch.no_grad():
        torch.onnx.export(
            model,
            (sample, torch.ones_like(sample), torch.zeros_like(sample)),
            str(out_path),
            input_names=list(ONNX_INPUTS),
            output_names=model.output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return out_path


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic INT8 quantisation of MatMul weights (activations stay float): no calibration data."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
    return int8_path
