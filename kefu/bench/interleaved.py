"""Server-to-raw-ORT ratios from alternating rounds, so both sides meet the same machine.

On this shared 2-core VM absolute times move by half from one minute to the next: raw ORT's
batch-1 p50 was 0.90 ms in one run and 1.72 ms in the next, and the same triage call timed in
one process gave a p50 of 1.25 ms and then 1.9 ms a few minutes later. A ratio of a server
figure and a raw figure taken minutes apart inherits that swing (the committed ratios moved
between 1.1 and 2.8 across runs of the same code). Here each round times raw ORT in this
process (the server idle) and then the server (the raw session idle), a few seconds each; a
round's ratio compares figures taken seconds apart, and the run reports the median over rounds
beside every round's figures.

Per round: raw batch-1 p50 then the server's c=1 p50 (single-message requests); raw best-batch
msgs/s (the faster of batch 8 and 32, as `reference_point`) then the server's msgs/s at c=32
with 8-message requests.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from kefu.bench.ort_raw import time_in_turns
from kefu.bench.workload import token_length_batches
from kefu.serving.classifier import Classifier

ROUNDS = 5
RAW_SECONDS = 1.0  # per raw point per round
BEST_BATCH_SIZES = (8, 32)

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
    single = token_length_batches(classifier.encoder, texts, 1)
    sized = {
        size: token_length_batches(classifier.encoder, texts, size) for size in BEST_BATCH_SIZES
    }
    measured = []
    for _ in range(rounds):
        raw_b1 = _raw(classifier, single, 1, 256)["batch_latency"]["p50_ms"]
        c1 = measure(concurrency=1, requests=c1_requests)
        raw_best = max(_raw(classifier, sized[size], size, 512)["msgs_per_s"] for size in sized)
        batch8 = measure(concurrency=32, requests=batch8_requests, messages=batch_messages)
        measured.append(
            {
                "raw_b1_p50_ms": raw_b1,
                "server_c1_p50_ms": c1["latency"]["p50_ms"],
                "raw_best_msgs_per_s": raw_best,
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


def _raw(classifier: Classifier, batches: list[list[str]], size: int, most: int) -> dict[str, Any]:
    """One raw ORT point: up to `most` messages or RAW_SECONDS, after a short warm-up."""
    return time_in_turns({"raw": classifier}, batches, most, RAW_SECONDS)["raw"].summary(size)
