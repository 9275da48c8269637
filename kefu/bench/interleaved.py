"""Server-to-raw-ORT ratios from alternating rounds, so both sides meet the same machine.

On this shared 2-core VM absolute times move by half from one minute to the next: raw ORT's
batch-1 p50 was 0.90 ms in one run and 1.72 ms in the next, and the same triage call timed in
one process gave a p50 of 1.25 ms and then 1.9 ms a few minutes later. A ratio of a server
figure and a raw figure taken minutes apart inherits that swing (the committed ratios moved
between 1.1 and 2.8 across runs of the same code). Here each round times raw ORT in this
process (the server idle) and then the server (the raw session idle), a few seconds each; a
round's ratio compares figures taken seconds apart, and the run reports the median over rounds
beside every round's figures.

Per round: raw ORT's reference point (`raw_reference`: batch-1 p50, and best-batch msgs/s, the
faster of batch 8 and 32), then the server's c=1 p50 (single-message requests) and its msgs/s at
c=32 with 8-message requests.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from kefu.bench.ort_raw import raw_reference
from kefu.bench.ratios import best_just_before
from kefu.serving.classifier import Classifier

ROUNDS = 5
RAW_SECONDS = 3.0  # raw ORT per round (a third per point)

# measure(concurrency=..., requests=..., messages=...) -> one load level's result
MeasureServer = Callable[..., dict[str, Any]]


def interleaved_ratios(
    classifier: Classifier,
    texts: list[str],
    measure: MeasureServer,
    *,
    rounds: int = ROUNDS,
    c1_requests: int = 100,
    batch8_requests: int = 200,
    batch_messages: int = 8,
) -> dict[str, Any]:
    """{"rounds": [...], "requests", "errors", "server_p50_over_raw_b1": median,
    "server_c32_batch8_over_raw_best": median}; `measure` loads the running server (a
    `measured_level` with its URL bound)."""
    measured = []
    for _ in range(rounds):
        raw = raw_reference(classifier, texts, RAW_SECONDS)
        c1 = measure(concurrency=1, requests=c1_requests)
        batch8 = measure(concurrency=32, requests=batch8_requests, messages=batch_messages)
        measured.append(
            {
                "raw_b1_p50_ms": raw["b1_p50_ms"],
                "server_c1_p50_ms": c1["latency"]["p50_ms"],
                "raw_best_msgs_per_s": best_just_before(raw),
                "server_c32_batch8_msgs_per_s": batch8["msgs_per_s"],
                "requests": c1["requests"] + batch8["requests"],
                "errors": c1["errors"] + batch8["errors"],
            }
        )
    return {
        "rounds": measured,
        "requests": sum(point["requests"] for point in measured),
        "errors": sum(point["errors"] for point in measured),
        "server_p50_over_raw_b1": statistics.median(
            point["server_c1_p50_ms"] / point["raw_b1_p50_ms"] for point in measured
        ),
        "server_c32_batch8_over_raw_best": statistics.median(
            point["server_c32_batch8_msgs_per_s"] / point["raw_best_msgs_per_s"]
            for point in measured
        ),
    }
