"""Scored files (what `kefu score` wrote: Parquet, CSV, JSONL or xlsx) read back in batches.

Files are read by `kefu.tabular`, like every other input; routing and conversation columns
(action, priority, session) are read when present: a record that cannot be read (a
broken JSON line, a malformed CSV record) or whose score cells are blank or unreadable (a
hand-edited export: no intent, escalate "maybe") is counted out as a `Reject`, never guessed
(a blank intent would otherwise show as an intent of its own, a blank escalate as "no"). Values
are brought to one Python shape whatever the format: `escalate` a bool (CSV holds
"true"/"false"), `reasons` a list (CSV holds "a;b"), times a `datetime.date` or None when the
value cannot be read as a time; undecodable bytes in any cell become U+FFFD.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kefu.errors import DataError
from kefu.serving.batch.sessions import session_key, turn_number
from kefu.serving.preview import preview
from kefu.serving.timestamps import calendar_day
from kefu.tabular import (
    DEFAULT_OPTIONS,
    REJECTS_SUFFIX,
    ReadOptions,
    Reject,
    TableFile,
    read_blocks,
    read_columns,
    repair,
    resolve_files,
)

REQUIRED = ("intent", "urgency", "emotion", "escalate", "reasons")
LABELS = ("intent", "urgency", "emotion")  # a row without one of these is not counted
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
# Read when present: routing (files scored before actions existed lack `action`) and the
# conversation a message was routed in (`kefu score --session-col`).
OPTIONAL = ("queue", "model_version", "priority", "action", "session_id", "session_turn")
BATCH_ROWS = 16_384


@dataclass
class ScoredBatch:
    intent: list[str]
    urgency: list[str]
    emotion: list[str]
    escalate: list[bool]
    reasons: list[list[str]]
    text: list[str | None]
    day: list[date | None] | None  # None when no time column was asked for
    queue: list[str | None]
    model_version: list[str | None]
    priority: list[str | None]
    action: list[str | None]
    session: list[str | None]
    session_turn: list[int | None]
    rejects: list[Reject] = field(default_factory=list)  # records that could not be read


def scored_files(
    patterns: list[str],
    text_col: str,
    time_col: str | None,
    options: ReadOptions = DEFAULT_OPTIONS,
) -> list[TableFile]:
    """Resolve the inputs and check each has the score columns (plus text and time columns)."""
    files = _without_rejects_files(patterns)
    for source in files:
        if _is_empty(source, options):  # an empty run's output: nothing to check or count
            continue
        columns = set(read_columns(source, options) or [])
        missing = [name for name in (*REQUIRED, text_col, time_col) if name and name not in columns]
        if missing:
            if any(name in REQUIRED for name in missing):
                hint = "; score it first with kefu score"
            else:  # the score columns are there: the caller's text or time column is not
                found = sorted(columns)
                shown = f"{found[:30]}" + (
                    f" and {len(found) - 30} more" if len(found) > 30 else ""
                )
                hint = f"; name the columns with --text-col / --time-col (found {shown})"
            raise DataError(f"missing columns {missing}{hint}", file=source.display_name)
    return files


def _without_rejects_files(patterns: list[str]) -> list[TableFile]:
    """The files the patterns name, less rejects files: `scored/*.jsonl`, or `scored/day*.jsonl`,
    also matches `scored/day1.jsonl.rejects.jsonl`, whose rows were never scored, and a pattern
    can hardly leave it out (the shell expands an unquoted one into names). Patterns that name
    nothing else are refused."""
    files, passed_over = [], []
    for source in resolve_files(patterns):
        if source.path.name.endswith(REJECTS_SUFFIX):
            passed_over.append(source.display_name)
        else:
            files.append(source)
    if not files:
        raise DataError(
            f"every input ({', '.join(passed_over)}) is a rejects file of the rows kefu score or "
            "kefu report left out, never scored; name the scored outputs beside them"
        )
    return files


def _strings(values: list[Any]) -> list[str | None]:
    """Label-like cells as text (a JSONL file may hold `"priority": 2`); empty stays None."""
    return [None if value is None or value == "" else str(value) for value in values]


def _is_empty(source: TableFile, options: ReadOptions) -> bool:
    """No record at all (header-only, 0 bytes): `kefu score` writes such a file for an empty
    input, with its score columns only, and a day without traffic must not stop a report."""
    return not any(len(block) for block in read_blocks(source, 1, options=options))


def read_scored(
    source: TableFile,
    text_col: str,
    time_col: str | None,
    options: ReadOptions = DEFAULT_OPTIONS,
) -> Iterator[ScoredBatch]:
    wanted = [*REQUIRED, *OPTIONAL, text_col, *([time_col] if time_col else [])]
    wanted = list(dict.fromkeys(wanted))
    for block in read_blocks(source, BATCH_ROWS, columns=wanted, options=options):
        rejects = [
            Reject.of(source.display_name, r, None, None, *r.problem)
            for r in block.records
            if r.problem is not None
        ]
        readable = [i for i, record in enumerate(block.records) if record.problem is None]
        # undecodable bytes (a wrong --encoding) in any cell, a queue or a session id as much
        # as a text, become U+FFFD: a lone surrogate cannot be written to the UTF-8 page
        cells = {name: repair(_pick(block.column(name), readable)) for name in wanted}
        usable = _usable(cells, readable, block.records, source.display_name, rejects)
        columns = {name: _pick(values, usable) for name, values in cells.items()}
        yield ScoredBatch(
            intent=[str(v) for v in columns["intent"]],
            urgency=[str(v) for v in columns["urgency"]],
            emotion=[str(v) for v in columns["emotion"]],
            escalate=[_bool(v) is True for v in columns["escalate"]],
            reasons=[_reasons(v) or [] for v in columns["reasons"]],
            text=[v if isinstance(v, str) else None for v in columns[text_col]],
            day=[calendar_day(v) for v in columns[time_col]] if time_col else None,
            queue=_strings(columns["queue"]),
            model_version=_strings(columns["model_version"]),
            priority=_strings(columns["priority"]),
            action=_strings(columns["action"]),
            session=[session_key(v) for v in columns["session_id"]],
            session_turn=[turn_number(v) for v in columns["session_turn"]],
            rejects=sorted(rejects, key=lambda reject: reject.line),
        )


def _usable(
    cells: dict[str, list[Any]],
    readable: list[int],
    records: list[Any],
    file: str,
    rejects: list[Reject],
) -> list[int]:
    """Positions (in `cells`) of the rows whose labels, escalate flag and reasons can be
    counted; the others are appended to `rejects` as `missing_score`, naming the first bad
    column."""
    usable = []
    for j, escalate in enumerate(cells["escalate"]):
        blank = next((name for name in LABELS if _blank(cells[name][j])), None)
        flag = _bool(escalate)
        if blank is None and flag is not None and _reasons(cells["reasons"][j]) is not None:
            usable.append(j)
            continue
        column = blank or ("escalate" if flag is None else "reasons")
        found = cells[column][j]
        detail = (
            f"{column} is blank"
            if blank or _blank(found)
            else f"escalate is {preview(found)}, expected true or false"
            if column == "escalate"
            else f"reasons is {preview(found)}, expected reason codes joined with ; or a JSON list"
        )
        rejects.append(Reject.of(file, records[readable[j]], None, column, "missing_score", detail))
    return usable


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _pick(values: list[Any], indices: list[int]) -> list[Any]:
    return values if len(indices) == len(values) else [values[i] for i in indices]


def _bool(value: Any) -> bool | None:
    """The escalate flag as Parquet (bool), JSONL (bool, 0/1) or CSV ("true") hold it; None
    when it is none of these (blank, "maybe", 2)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    return None


def _reasons(value: Any) -> list[str] | None:
    """The reason codes as Parquet (a list), JSONL (a list) or CSV and xlsx ("a;b") hold them;
    None when a cell opens like a JSON list and is none (`['a' 'b']`, a list printed by
    pandas), or is neither text nor a list (a number), which `_usable` counts out rather than
    making codes up."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return [part for part in text.split(";") if part]
        try:
            codes = json.loads(text)
        except ValueError:
            return None
        return [str(v) for v in codes] if isinstance(codes, list) else None
    return [str(v) for v in value] if isinstance(value, list | tuple) else None
