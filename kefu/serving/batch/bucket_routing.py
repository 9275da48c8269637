"""Route one bucket of scored rows with their conversations' context: the step of session
routing that runs anywhere (this process, a worker process, a Ray task).

`route_bucket(task)` reads a bucket's keys file (the INPUTS columns of rows whose sessions are
all in this bucket, plus each row's input position ROW), sorts it by (session, order key, input
row) and walks each session in order: turn number, previous intents (null where the intent
abstained; the latest MAX_PREVIOUS_INTENTS, the most a server request carries, which also keeps
a session of a million rows, a constant or placeholder id, from costing time quadratic in its
length) and the count of earlier clarify actions make the `ConversationContext`, and
`routing.decide`, the function the server calls, gives the decision. The decisions file it
writes (DECIDED_SCHEMA) is sorted by input row. Buckets share no session, so they are routed in
any order, at once; `session_routing.SessionRouter` makes the buckets and merges the decisions
back into the output.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kefu.serving.batch.scoring import HEAD_TOPS, SCORE_SCHEMA, TEXT_ASKS_HUMAN
from kefu.serving.batch.sessions import ORDER_KEY, SESSION_KEY, TURN_KEY, SessionSpec
from kefu.serving.classifier import HeadPrediction, Prediction
from kefu.serving.routing import MAX_PREVIOUS_INTENTS, Action, ConversationContext, decide
from kefu.serving.routing_policy import RoutingPolicy
from kefu.serving.taxonomy import HEADS

WRITE_ROWS = 8_192  # rows per row group of a bucket's files, and rows routed per slice
ROW = "_kefu_row"  # a row's position in the run's input, carried through the buckets
ROUTED = ("queue", "priority", "action", "escalate", "reasons", "candidates")
SESSION_OUTPUT = ("session_id", "session_turn")
# the columns of a keys file, besides ROW: what routing reads of a scored row
INPUTS = [
    *(f"{head}{suffix}" for head in HEADS for suffix in ("", "_confidence", "_abstain")),
    "truncated",
    *HEAD_TOPS.values(),
    TEXT_ASKS_HUMAN,
    SESSION_KEY,
    ORDER_KEY,
    TURN_KEY,
]
DECIDED_SCHEMA = pa.schema(
    [pa.field(ROW, pa.int64())] + [SCORE_SCHEMA.field(name) for name in (*ROUTED, *SESSION_OUTPUT)]
)


@dataclass
class SessionStats:
    """What the run's summary says of its conversations: each bucket counts its own rows, and
    the router adds the buckets up."""

    conversations: int = 0
    without_session: int = 0  # routed as a conversation of one message
    without_order: int = 0  # turn or time unreadable: routed after the session's other rows
    long_history: int = 0  # conversations past MAX_PREVIOUS_INTENTS earlier messages

    def add(self, other: SessionStats) -> None:
        """Count another bucket's rows in (a session is in one bucket: every count adds up)."""
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def lines(self, spec: SessionSpec) -> list[str]:
        lines = [
            f"conversations {self.conversations:,} (by {spec.session_col!r}, {spec.mode} order)"
        ]
        if self.without_session:
            lines.append(f"{self.without_session:,} rows without a session id, each routed alone")
        if self.without_order:
            column = spec.turn_col or spec.time_col
            lines.append(
                f"{self.without_order:,} rows with no readable {column!r}, routed after their "
                "session's other rows"
            )
        if self.long_history:
            lines.append(
                f"conversations of more than {MAX_PREVIOUS_INTENTS + 1:,} messages: "
                f"{self.long_history:,}; their later messages were routed with the latest "
                f"{MAX_PREVIOUS_INTENTS:,} intents, the most a server request carries"
            )
        return lines


@dataclass(frozen=True)
class BucketTask:
    """One bucket to route: its keys file in, its decisions file out (absolute paths, so a Ray
    task on another node finds them on the storage the run shares). Picklable."""

    keys: str
    decided: str
    spec: SessionSpec
    policy: RoutingPolicy


# Routes every task (in any order, at once or not) and returns each bucket's statistics.
BucketRunner = Callable[[list[BucketTask]], list[SessionStats]]


def route_serially(tasks: list[BucketTask]) -> list[SessionStats]:
    """The runner of one process: one bucket after another, here."""
    return [route_bucket(task) for task in tasks]


def route_bucket(task: BucketTask) -> SessionStats:
    """Route one bucket: its keys file, sorted and walked session by session, -> its decisions
    file (sorted by input row; written under a temp name, then renamed); its statistics."""
    table = pq.read_table(task.keys)
    order = pc.sort_indices(
        table,
        sort_keys=[(SESSION_KEY, "ascending"), (ORDER_KEY, "ascending"), (ROW, "ascending")],
    )  # nulls sort last (Arrow's default): rows without a session, then without an order
    stats = SessionStats()
    walk = _Walk(task.spec, task.policy, stats)
    decided = [
        pa.Table.from_pylist(
            [walk.route(row) for row in table.take(order.slice(start, WRITE_ROWS)).to_pylist()],
            DECIDED_SCHEMA,
        )
        for start in range(0, len(order), WRITE_ROWS)
    ]
    del table, order
    tmp = f"{task.decided}.tmp"
    pq.write_table(pa.concat_tables(decided).sort_by(ROW), tmp, row_group_size=WRITE_ROWS)
    os.replace(tmp, task.decided)
    return stats


class _Walk:
    """Walks one bucket's rows in (session, order) order, carrying each session's context."""

    def __init__(self, spec: SessionSpec, policy: RoutingPolicy, stats: SessionStats):
        self.spec, self.policy, self.stats = spec, policy, stats
        self.session: str | None = None
        self.previous: deque[str | None] = deque(maxlen=MAX_PREVIOUS_INTENTS)
        self.position = 0  # earlier messages of the session, however many `previous` keeps
        self.clarifications = 0

    def route(self, row: dict[str, Any]) -> dict[str, Any]:
        session = row[SESSION_KEY]
        if session is None:
            self.stats.without_session += 1
            context, turn = ConversationContext(), None
        else:
            if session != self.session:
                self.session, self.position, self.clarifications = session, 0, 0
                self.previous.clear()
                self.stats.conversations += 1
            if row[ORDER_KEY] is None and self.spec.mode != "input":
                self.stats.without_order += 1
            turn = row[TURN_KEY] if self.spec.mode == "turn" else self.position + 1
            self.stats.long_history += self.position == MAX_PREVIOUS_INTENTS + 1
            context = ConversationContext(turn, tuple(self.previous), self.clarifications)
        decision = decide(prediction_of(row), context, self.policy)
        if session is not None:
            self.previous.append(None if row["intent_abstain"] else row["intent"])
            self.position += 1
            self.clarifications += decision.action is Action.CLARIFY
        return {
            ROW: row[ROW],
            **decision.as_plain(),
            "session_id": session,
            "session_turn": turn,
        }


def prediction_of(row: dict[str, Any]) -> Prediction:
    """The `Prediction` routing reads, rebuilt from a scored row (floats round-trip exactly)."""
    heads = {
        head: HeadPrediction(
            label=row[head],
            name=row[head],
            confidence=row[f"{head}_confidence"],
            abstain=row[f"{head}_abstain"],
            top=[(row[head], row[f"{head}_confidence"])],
            # only a head the bundle marks untrained has no label; routing ignores such a head
            # (a policy may name it in low_confidence.heads, where it always abstains)
            trained=row[head] is not None,
        )
        for head in HEADS
    }
    for head, column in HEAD_TOPS.items():
        heads[head].top = [(item["label"], item["confidence"]) for item in row[column]]
    return Prediction(
        heads=heads,
        group="",
        truncated=row["truncated"],
        asks_for_human=row[TEXT_ASKS_HUMAN],
    )
