"""Conversations in batch scoring: which rows form a session, and in which order they came.

`kefu score --session-col S [--turn-col T | --time-col C]` routes every message with the
context the server would get from a caller that tracks the conversation: its turn number, the
intents of the earlier turns (null where the intent abstained) and how many times the bot
already asked the customer to choose. Scoring needs no order (a message's prediction does not
depend on its neighbours); routing does, so it runs after scoring, over all committed rows
(`session_routing.py`), and sessions may be spread over any chunks and files. Both engines work
so: each annotates its chunks as it reads them (Ray: in the read task) and routes in its merge.

`annotate` adds three columns to each chunk as it is read (names start with `_kefu_`, never
allowed in inputs and never written out): the session key as text (null when the row has no
session id: it is then routed alone, counted apart from the conversations), the order key (the turn number or the
time as epoch seconds; null when unreadable: such rows go after the session's others) and the
turn number itself. Nothing is rejected for a session value: a row is scored whatever its
session columns hold, and the run reports how many rows could not be placed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from kefu.errors import ConfigError
from kefu.serving.batch.sources import INTERNAL_PREFIX
from kefu.serving.timestamps import epoch_seconds

SESSION_KEY, ORDER_KEY, TURN_KEY = "_kefu_session", "_kefu_order", "_kefu_turn"
KEY_FIELDS = [
    pa.field(SESSION_KEY, pa.string()),
    pa.field(ORDER_KEY, pa.float64()),
    pa.field(TURN_KEY, pa.int64()),
]


@dataclass(frozen=True)
class SessionSpec:
    """The session options of a run: `mode` says what orders the turns of a session."""

    session_col: str
    turn_col: str | None = None
    time_col: str | None = None

    @classmethod
    def from_options(
        cls, session_col: str | None, turn_col: str | None, time_col: str | None
    ) -> SessionSpec | None:
        if session_col is None:
            if turn_col or time_col:
                option = "--turn-col" if turn_col else "--time-col"
                raise ConfigError(f"{option} orders the turns of a session: pass --session-col too")
            return None
        if turn_col and time_col:
            raise ConfigError(
                "pass --turn-col or --time-col, not both: one column orders the turns"
            )
        return cls(session_col, turn_col, time_col)

    @property
    def mode(self) -> str:
        """ "turn" (turn numbers given), "time" (ordered by time) or "input" (file order)."""
        return "turn" if self.turn_col else "time" if self.time_col else "input"

    @property
    def columns(self) -> list[str]:
        return [name for name in (self.session_col, self.turn_col, self.time_col) if name]


def annotate(table: pa.Table, spec: SessionSpec) -> pa.Table:
    """`table` with the session key, order key and turn columns appended."""
    sessions = [session_key(value) for value in _column(table, spec.session_col)]
    turns: list[int | None] = [None] * table.num_rows
    if spec.turn_col:
        turns = [turn_number(value) for value in _column(table, spec.turn_col)]
        order = [float(turn) if turn is not None else None for turn in turns]
    elif spec.time_col:
        order = [epoch_seconds(value) for value in _column(table, spec.time_col)]
    else:
        order = [None] * table.num_rows
    for field, values in zip(KEY_FIELDS, (sessions, order, turns), strict=True):
        table = table.append_column(field, pa.array(values, field.type))
    return table


def without_internal(schema: pa.Schema) -> pa.Schema:
    """`schema` without the columns kefu carries in flight (`_kefu_*`): never written out."""
    return pa.schema([field for field in schema if not field.name.startswith(INTERNAL_PREFIX)])


def _column(table: pa.Table, name: str) -> list[Any]:
    # a JSONL chunk where no record has the key has no such column
    if name not in table.column_names:
        return [None] * table.num_rows
    return table.column(name).to_pylist()


def session_key(value: Any) -> str | None:
    """The session id as text; None when absent or blank (the row is a conversation alone).

    A whole float is its integer: pandas stores an id column with a missing cell as floats, so
    a Parquet or JSONL export holds 1001.0 where the CSV of the same log holds "1001"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


# No conversation has a million customer turns; a larger number is an id or a corrupt cell,
# and the output's turn column is a 64-bit integer.
MAX_TURN = 1_000_000


# A whole number as text, also as a float column writes it: pandas saves an integer column with
# a missing cell as floats, so a CSV of turns reads "1.0", "2.0", ...
_WHOLE_NUMBER = re.compile(r"([0-9]+)(?:\.0*)?", re.ASCII)


def turn_number(value: Any) -> int | None:
    """A customer turn number: an integer in [1, MAX_TURN] (3, 3.0, "3", "3.0"); None when
    unreadable.

    Only ASCII digits: "①" and "²" are digits to `str.isdigit` but not to `int`."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        whole = _WHOLE_NUMBER.fullmatch(value.strip())
        if whole is None:
            return None
        value = int(whole.group(1))
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    return value if isinstance(value, int) and 1 <= value <= MAX_TURN else None
