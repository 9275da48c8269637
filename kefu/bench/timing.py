"""Small timing helpers shared by the benchmark parts: percentiles and deadlines.

Every measuring loop in `kefu bench` is bounded twice, by a count and by a `Deadline`, so a
slow or busy machine shortens a run instead of stretching it past its budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np


class Deadline:
    """A point in time `seconds` from now; `expired` once it has passed."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.perf_counter() + seconds

    @property
    def expired(self) -> bool:
        return time.perf_counter() >= self.end

    @property
    def remaining(self) -> float:
        return max(0.0, self.end - time.perf_counter())


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    """Count, mean and p50/p95/p99 in milliseconds (None when nothing was measured)."""
    if not len(latencies_ms):
        return {"n": 0, "mean_ms": None, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "n": int(values.size),
        "mean_ms": float(values.mean()),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
    }
