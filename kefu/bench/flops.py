"""Compute efficiency: model FLOPs per message against the machine's measured float32 peak.

FLOPs of a BERT encoder on a message of L tokens (multiply-add = 2 FLOPs), per layer:
Q, K, V and output projections 4 * 2*L*h*h, attention scores and weighted sum 2 * 2*L*L*h,
feed-forward 2 * 2*L*h*i; plus the heads, 2*h*k once per message. Embedding look-ups,
LayerNorm, softmax and GELU are left out (memory-bound, a few percent). Counted on real tokens
only, so the padding a batch carries shows up as lost efficiency. Averaged over messages
(attention is quadratic, so this is not FLOPs of the mean length).

The peak is the best of several timed numpy float32 matmuls (n x n, 2n^3 FLOPs) using every
core: what this machine's BLAS reaches, not a datasheet number. On a busy machine the best of
several runs is still low, and the achieved share can then exceed 100%: read it with the load
average the results file records. INT8 runs integer kernels, so
its fraction of the float32 peak is a ratio of work rates, not a utilisation.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from kefu.bench.reference import Architecture
from kefu.bench.timing import Deadline


def flops_per_message(tokens: int | np.ndarray, arch: Architecture) -> np.ndarray:
    """FLOPs of one forward pass per message of `tokens` tokens ([CLS]/[SEP] included)."""
    length = np.asarray(tokens, dtype=np.float64)
    h, i = arch.hidden, arch.intermediate
    per_layer = 8 * length * h * h + 4 * length * length * h + 4 * length * h * i
    return arch.layers * per_layer + 2 * h * arch.heads_out


def measured_peak_gflops(
    size: int = 2048, repeats: int = 10, max_seconds: float = 15.0
) -> dict[str, Any]:
    """Best float32 GFLOP/s of `repeats` timed (size x size) @ (size x size) numpy matmuls."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up: BLAS thread pool start-up
    best = float("inf")
    deadline = Deadline(max_seconds)
    runs = 0
    while runs < repeats and not deadline.expired:
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
        runs += 1
    return {"size": size, "runs": runs, "best_seconds": best, "gflops": 2 * size**3 / best / 1e9}


def efficiency(
    arch: Architecture, token_counts: np.ndarray, peak_gflops: float, ort_variants: dict[str, Any]
) -> dict[str, Any]:
    """GFLOP per message and, per variant, achieved GFLOP/s and fraction of peak at each batch."""
    mean_flops = float(flops_per_message(token_counts, arch).mean())
    achieved: dict[str, Any] = {}
    for variant, points in ort_variants.items():
        achieved[variant] = {}
        for name, point in points.items():
            gflops = mean_flops * point["model_msgs_per_s"] / 1e9
            achieved[variant][name] = {"gflops": gflops, "fraction_of_peak": gflops / peak_gflops}
    return {
        "architecture": {
            "layers": arch.layers,
            "hidden": arch.hidden,
            "intermediate": arch.intermediate,
            "heads_out": arch.heads_out,
            "base_model": arch.base_model,
        },
        "mean_tokens": float(token_counts.mean()),
        "gflop_per_message": mean_flops / 1e9,
        "peak_gflops": peak_gflops,
        "achieved": achieved,
    }
