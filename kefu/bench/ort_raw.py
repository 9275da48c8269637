"""The floor: the ONNX Runtime model call alone, and tokenisation timed separately.

Batches are cut from the sampled texts sorted by token count and then shuffled, as the
server's micro-batcher and `kefu score` group messages: a batch of 32 random messages would be
padded to its longest one and waste about two thirds of the compute on this length mix, which
is not a floor. Per batch size and variant it reports ms per message for tokenisation, for the
model call and for both, messages/s and the share of padding tokens; everything else in the
benchmark (server, batch scoring, PyTorch) is compared with these numbers.

The variants take turns on the same blocks of batches (fp32, INT8, then INT8, fp32, ...), so a
change in the machine's load hits both alike and the INT8 / fp32 ratio stays meaningful on a
busy box.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kefu.bench.timing import Deadline, latency_summary
from kefu.bench.workload import token_length_batches
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.classifier import Classifier
from kefu.serving.tokenization import EncodedBatch

BATCH_SIZES = (1, 8, 32)
WARMUP_BATCHES = 3
BLOCK_MESSAGES = 64  # messages per turn when two runtimes or variants take turns
SWITCH_PAUSE_SECONDS = 0.05  # untimed, lets the previous runtime's threads stop spinning


def raw_call(classifier: Classifier, encoded: EncodedBatch) -> None:
    """One `session.run` over the whole padded batch: the floor, even for a variant that
    kefu runs row by row (`Classifier.logits`, bundle.ROW_BY_ROW_VARIANTS)."""
    classifier.session.run(None, encoded.as_onnx_feed())


@dataclass
class PointTimer:
    """Tokenisation and model seconds per batch of one (variant, batch size) point."""

    tokenise_s: list[float] = field(default_factory=list)
    model_s: list[float] = field(default_factory=list)
    messages: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0

    def run(self, classifier: Classifier, batch: list[str]) -> None:
        start = time.perf_counter()
        encoded = classifier.encoder.encode(batch)
        encoded_at = time.perf_counter()
        raw_call(classifier, encoded)
        self.model_s.append(time.perf_counter() - encoded_at)
        self.tokenise_s.append(encoded_at - start)
        self.messages += len(batch)
        self.real_tokens += int(encoded.attention_mask.sum())
        self.padded_tokens += int(encoded.attention_mask.size)

    def summary(self, batch_size: int) -> dict[str, Any]:
        tokenise, model = sum(self.tokenise_s), sum(self.model_s)
        total = tokenise + model
        latencies = [1000 * (a + b) for a, b in zip(self.tokenise_s, self.model_s, strict=True)]
        return {
            "batch_size": batch_size,
            "messages": self.messages,
            "batches": len(self.model_s),
            "tokenise_ms_per_msg": 1000 * tokenise / self.messages,
            "model_ms_per_msg": 1000 * model / self.messages,
            "total_ms_per_msg": 1000 * total / self.messages,
            "msgs_per_s": self.messages / total,
            "model_msgs_per_s": self.messages / model,
            "batch_latency": latency_summary(latencies),
            "padding_share": 1 - self.real_tokens / self.padded_tokens,
        }


def bench_ort_raw(
    bundle_dir: Path,
    texts: list[str],
    *,
    variants: tuple[str, ...] = ("fp32", "int8"),
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    messages_per_point: int = 512,
    seconds_per_point: float = 20.0,
    threads: int | None = None,
) -> dict[str, Any]:
    """{"variants": {variant: {"batch_<n>": point}}, "threads": n, "model_mb": {...}}.

    `seconds_per_point` bounds each (variant, batch size) point; the variants of one batch
    size share `seconds_per_point * len(variants)`.
    """
    bundle = read_bundle(bundle_dir)
    classifiers = {v: Classifier(bundle, variant=v, intra_op_threads=threads) for v in variants}
    results: dict[str, Any] = {
        "threads": threads,
        "model_mb": {v: round(bundle.model_path(v).stat().st_size / 1e6, 2) for v in variants},
        "variants": {v: {} for v in variants},
    }
    encoder = next(iter(classifiers.values())).encoder
    for size in batch_sizes:
        batches = token_length_batches(encoder, texts, size)
        timers = time_in_turns(classifiers, batches, messages_per_point, seconds_per_point)
        for variant, timer in timers.items():
            results["variants"][variant][f"batch_{size}"] = timer.summary(size)
    return results


def time_in_turns(
    classifiers: dict[str, Classifier],
    batches: list[list[str]],
    max_messages: int,
    seconds_per_variant: float,
) -> dict[str, PointTimer]:
    """The same blocks of batches through every classifier in turn, after a warm-up.

    Turns are blocks of about `BLOCK_MESSAGES` messages with an untimed pause between them:
    ORT's worker threads spin for a while after each call, so alternating sessions call by
    call would charge each one for the other's spinning (measured: twice the time).
    """
    for classifier in classifiers.values():
        for batch in batches[:WARMUP_BATCHES]:
            raw_call(classifier, classifier.encoder.encode(batch))
    timers = {variant: PointTimer() for variant in classifiers}
    order = list(classifiers)
    block = max(1, BLOCK_MESSAGES // len(batches[0]))
    deadline = Deadline(seconds_per_variant * len(classifiers))
    start = 0
    while min(t.messages for t in timers.values()) < max_messages and not deadline.expired:
        turn = [batches[(start + i) % len(batches)] for i in range(block)]
        for variant in order if (start // block) % 2 == 0 else reversed(order):
            if len(classifiers) > 1:
                time.sleep(SWITCH_PAUSE_SECONDS)
            for batch in turn:
                timers[variant].run(classifiers[variant], batch)
        start += block
    return timers


def reference_point(
    bundle_dir: Path, variant: str, texts: list[str], threads: int | None, seconds: float = 6.0
) -> dict[str, float]:
    """A short raw ORT measurement (batch-1 p50, batch-8 and batch-32 msgs/s) taken right
    before a server or batch-scoring run, so their ratios to raw ORT compare numbers measured
    under the same machine load. The best batch is the faster of 8 and 32 (which one wins
    depends on the machine's load and the length mix)."""
    classifier = Classifier.from_bundle(bundle_dir, variant=variant, intra_op_threads=threads)
    return raw_reference(classifier, texts, seconds)


def raw_reference(classifier: Classifier, texts: list[str], seconds: float) -> dict[str, float]:
    """`reference_point` on a classifier already loaded (a third of `seconds` per point)."""
    single = token_length_batches(classifier.encoder, texts, 1)
    b1 = time_in_turns({"raw": classifier}, single, 256, seconds / 3)["raw"].summary(1)
    point = {"b1_p50_ms": b1["batch_latency"]["p50_ms"]}
    for size in (8, 32):
        batches = token_length_batches(classifier.encoder, texts, size)
        timed = time_in_turns({"raw": classifier}, batches, 512, seconds / 3)["raw"]
        point[f"b{size}_msgs_per_s"] = timed.summary(size)["msgs_per_s"]
    return point
