"""Texts in, score columns out: `Deployment.triage_in_batches`, nothing more.

Both engines (the local process pool and the Ray actors) call `Scorer.score` on the texts of
one chunk, in the same order and with the same length-sorted batches, so the two engines give
bit-identical confidences (padding changes float sums in the last bits, so the batch layout
must match, not only the model). Entities are not extracted: the output has no column for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from kefu.serving.classifier import Prediction
from kefu.serving.deployment import Deployment
from kefu.serving.routing import Decision
from kefu.serving.taxonomy import HEADS

SCORE_SCHEMA = pa.schema(
    [
        ("intent", pa.string()),
        ("intent_confidence", pa.float64()),
        ("intent_abstain", pa.bool_()),
        ("urgency", pa.string()),
        ("urgency_confidence", pa.float64()),
        ("urgency_abstain", pa.bool_()),
        ("emotion", pa.string()),
        ("emotion_confidence", pa.float64()),
        ("emotion_abstain", pa.bool_()),
        ("group", pa.string()),
        ("queue", pa.string()),
        ("priority", pa.string()),
        ("action", pa.string()),
        ("escalate", pa.bool_()),
        ("reasons", pa.list_(pa.string())),
        ("candidates", pa.list_(pa.string())),  # intent ids offered by a clarify action
        ("truncated", pa.bool_()),
        # the conversation and turn a message was routed with (--session-col; null without)
        ("session_id", pa.string()),
        ("session_turn", pa.int64()),
        ("model_version", pa.string()),
    ]
)
SCORE_COLUMNS = tuple(SCORE_SCHEMA.names)
# What session routing needs beyond the score columns, carried in the staged parts only.
HEAD_TOPS = {head: f"_kefu_{head}_top" for head in HEADS}
TEXT_ASKS_HUMAN = "_kefu_asks_human"
ROUTE_INPUT_FIELDS = [
    *(
        pa.field(
            column, pa.list_(pa.struct([("label", pa.string()), ("confidence", pa.float64())]))
        )
        for column in HEAD_TOPS.values()
    ),
    pa.field(TEXT_ASKS_HUMAN, pa.bool_()),
]
DEFAULT_BATCH_SIZE = 64
INPUT_PREFIX = "input_"  # input columns named like score columns are kept under this prefix


class Scorer:
    """A deployment loaded once per process (or per Ray actor), scoring chunks of texts."""

    def __init__(self, deployment: Deployment, batch_size: int = DEFAULT_BATCH_SIZE):
        self.deployment = deployment
        self.batch_size = batch_size

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
        deployment = Deployment.load(
            bundle_dir, variant=variant, policy_path=policy_path, threads=intra_op_threads
        )
        return cls(deployment, batch_size)

    @property
    def model_version(self) -> str:
        return self.deployment.model_version

    def score(self, texts: Sequence[str], *, route_inputs: bool = False) -> pa.Table:
        """A `SCORE_SCHEMA` table with one row per text, in the order given.

        `route_inputs` adds `ROUTE_INPUT_FIELDS` (each head's ranked labels and whether the text
        asks for a person), for session routing to decide again with context after scoring.
        """
        top_k = self.deployment.top_k_for_rerouting(1) if route_inputs else 1
        run = self.deployment.triage_in_batches(
            texts, batch_size=self.batch_size, top_k=top_k, check_texts=False
        )  # the readers refused bad rows, each with a reject
        rows = [
            score_row(prediction, decision, self.model_version)
            for prediction, decision in run.results
        ]
        table = pa.Table.from_pylist(rows, schema=SCORE_SCHEMA)
        if route_inputs:
            tops = [
                [
                    [{"label": label, "confidence": value} for label, value in p.heads[head].top]
                    for p, _ in run.results
                ]
                for head in HEAD_TOPS
            ]
            asks = [p.asks_for_human for p, _ in run.results]
            for field, values in zip(ROUTE_INPUT_FIELDS, (*tops, asks), strict=True):
                table = table.append_column(field, pa.array(values, field.type))
        return table


def score_row(prediction: Prediction, decision: Decision, model_version: str) -> dict[str, Any]:
    """One output row's score columns (`SCORE_SCHEMA`)."""
    row: dict[str, Any] = {}
    for head in HEADS:
        row[head] = prediction.heads[head].label
        row[f"{head}_confidence"] = prediction.heads[head].confidence
        row[f"{head}_abstain"] = prediction.heads[head].abstain
    return (
        row
        | decision.as_plain()
        | {
            "group": prediction.group,
            "truncated": prediction.truncated,
            "session_id": None,
            "session_turn": None,
            "model_version": model_version,
        }
    )


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
    for field in ROUTE_INPUT_FIELDS:
        if field.name in scores.column_names:
            table = table.append_column(field, scores.column(field.name))
    return table
