"""Texts in, score columns out: `Classifier.predict` then `routing.decide`, nothing more.

Both engines (the local process pool and the Ray actors) call `Scorer.score` on the texts of
one chunk, in the same order and with the same micro-batches, so the two engines give
bit-identical confidences (padding changes float sums in the last bits, so the micro-batch
layout must match, not only the model).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from kefu.serving.classifier import Classifier
from kefu.serving.routing import ConversationContext, RoutingPolicy, decide

SCORE_SCHEMA = pa.schema(
    [
        ("intent", pa.string()),
        ("intent_confidence", pa.float64()),
        ("urgency", pa.string()),
        ("urgency_confidence", pa.float64()),
        ("emotion", pa.string()),
        ("emotion_confidence", pa.float64()),
        ("group", pa.string()),
        ("queue", pa.string()),
        ("priority", pa.string()),
        ("escalate", pa.bool_()),
        ("reasons", pa.list_(pa.string())),
        ("model_version", pa.string()),
    ]
)
SCORE_COLUMNS = tuple(SCORE_SCHEMA.names)
DEFAULT_BATCH_SIZE = 64
INPUT_PREFIX = "input_"  # input columns named like score columns are kept under this prefix


def threads_per_worker(workers: int) -> int:
    """ORT intra-op threads per worker so that workers x threads = cores (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class Scorer:
    """A classifier and a routing policy, loaded once per process (or per Ray actor)."""

    def __init__(
        self, classifier: Classifier, policy: RoutingPolicy, batch_size: int = DEFAULT_BATCH_SIZE
    ):
        self.classifier = classifier
        self.policy = policy
        self.batch_size = batch_size
        self.context = ConversationContext()  # one message per row: no turn history in a log row

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path,
        *,
        variant: str | None = None,
        policy_path: str | Path | None = None,
        intra_op_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Scorer:
        classifier = Classifier.from_bundle(
            bundle_dir, variant=variant, intra_op_threads=intra_op_threads
        )
        return cls(classifier, RoutingPolicy.for_bundle(classifier.bundle, policy_path), batch_size)

    @property
    def model_version(self) -> str:
        return self.classifier.model_version

    def score(self, texts: Sequence[str]) -> pa.Table:
        """A `SCORE_SCHEMA` table with one row per text, in the order given.

        Texts are sorted by length inside the call so each micro-batch pads to similar lengths
        (a log mixes "在吗" with pasted order cards); the sort is stable, hence deterministic.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: list[dict | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            predictions = self.classifier.predict([texts[i] for i in batch], top_k=1)
            for i, prediction in zip(batch, predictions, strict=True):
                decision = decide(prediction, self.context, self.policy)
                rows[i] = {
                    "intent": prediction.intent.label,
                    "intent_confidence": prediction.intent.confidence,
                    "urgency": prediction.urgency.label,
                    "urgency_confidence": prediction.urgency.confidence,
                    "emotion": prediction.emotion.label,
                    "emotion_confidence": prediction.emotion.confidence,
                    "group": prediction.group,
                    "queue": decision.queue,
                    "priority": decision.priority,
                    "escalate": decision.escalate,
                    "reasons": list(decision.reasons),
                    "model_version": self.model_version,
                }
        return pa.Table.from_pylist(rows, schema=SCORE_SCHEMA)


def attach_scores(inputs: pa.Table, scores: pa.Table) -> pa.Table:
    """Input columns then score columns.

    An input column named like a score column (gold labels in a labelled file, the predictions
    of an earlier run) is kept as `input_<name>` rather than lost; only when that name is
    taken too is it dropped.
    """
    names = [
        f"{INPUT_PREFIX}{name}" if name in SCORE_COLUMNS else name for name in inputs.column_names
    ]
    keep = [
        i for i, name in enumerate(names) if names.index(name) == i and name not in SCORE_COLUMNS
    ]
    table = pa.Table.from_arrays([inputs.column(i) for i in keep], names=[names[i] for i in keep])
    for field in SCORE_SCHEMA:
        table = table.append_column(field, scores.column(field.name))
    return table
