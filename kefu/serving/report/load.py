"""Scored files (what `kefu score` wrote: Parquet, CSV or JSONL) read back in batches.

Only the columns the report needs are read, and values are brought to one Python shape
whatever the format: `escalate` a bool (CSV holds "true"/"false"), `reasons` a list (CSV holds
"a;b"), times a `datetime.date` or None when the value cannot be read as a time.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kefu.errors import DataError
from kefu.serving.batch.sessions import session_key, turn_number
from kefu.serving.batch.sources import InputFile, resolve_inputs

REQUIRED = ("intent", "urgency", "emotion", "escalate", "reasons")
# Read when present: routing (files scored before actions existed lack `action`) and the
# conversation a message was routed in (`kefu score --session-col`).
OPTIONAL = ("queue", "model_version", "priority", "action", "session_id", "session_turn")
BATCH_ROWS = 65_536
_YMD = re.compile(r"(\d{4})\D{1,3}(\d{1,2})\D{1,3}(\d{1,2})")  # 2024/3/1, 2024年3月1日


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


def scored_files(patterns: list[str], text_col: str, time_col: str | None) -> list[InputFile]:
    """Resolve the inputs and check each has the score columns (plus text and time columns)."""
    files = resolve_inputs(patterns)
    for source in files:
        columns = set(_columns(source))
        missing = [name for name in (*REQUIRED, text_col, time_col) if name and name not in columns]
        if missing:
            hint = "; score it first with kefu score" if any(m in REQUIRED for m in missing) else ""
            raise DataError(f"missing columns {missing}{hint}", file=str(source.path))
    return files


def read_scored(source: InputFile, text_col: str, time_col: str | None) -> Iterator[ScoredBatch]:
    wanted = [*REQUIRED, *OPTIONAL, text_col, *([time_col] if time_col else [])]
    try:
        for columns in _batches(source, list(dict.fromkeys(wanted))):
            optional = {
                name: list(columns.get(name) or [None] * len(columns["intent"]))
                for name in OPTIONAL
            }
            yield ScoredBatch(
                intent=[str(v) for v in columns["intent"]],
                urgency=[str(v) for v in columns["urgency"]],
                emotion=[str(v) for v in columns["emotion"]],
                escalate=[_bool(v) for v in columns["escalate"]],
                reasons=[_reasons(v) for v in columns["reasons"]],
                text=[v if isinstance(v, str) else None for v in columns[text_col]],
                day=[parse_day(v) for v in columns[time_col]] if time_col else None,
                queue=optional["queue"],
                model_version=optional["model_version"],
                priority=optional["priority"],
                action=optional["action"],
                session=[session_key(v) for v in optional["session_id"]],
                session_turn=[turn_number(v) for v in optional["session_turn"]],
            )
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise DataError(f"cannot read the scored file: {exc}", file=str(source.path)) from None


def parse_day(value: Any) -> date | None:
    """The calendar day of a timestamp: ISO strings, datetimes, epoch seconds or milliseconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch_day(float(value))
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit() and len(text) in (10, 13):
        return _epoch_day(float(text))
    try:
        return datetime.fromisoformat(text.replace("/", "-")).date()
    except ValueError:
        match = _YMD.match(text)
        if not match:
            return None
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return None


def _epoch_day(seconds: float) -> date | None:
    if seconds > 1e11:  # milliseconds
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).date()
    except (OverflowError, OSError, ValueError):
        return None


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _reasons(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return [str(v) for v in json.loads(text)]
        return [part for part in text.split(";") if part]
    return [str(v) for v in value]


def _columns(source: InputFile) -> list[str]:
    try:
        if source.format == "parquet":
            return list(pq.read_schema(source.path).names)
        if source.format == "csv":
            with source.path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
                return next(csv.reader(handle), [])
        with source.path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    return list(json.loads(line))
        return []
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise DataError(f"cannot read the scored file: {exc}", file=str(source.path)) from None


def _batches(source: InputFile, wanted: list[str]) -> Iterator[dict[str, list[Any]]]:
    if source.format == "parquet":
        parquet = pq.ParquetFile(source.path)
        present = [name for name in wanted if name in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=present):
            yield batch.to_pydict()
    elif source.format == "csv":
        header = _columns(source)
        present = [name for name in wanted if name in header]
        options = pacsv.ConvertOptions(
            include_columns=present, column_types={name: pa.string() for name in present}
        )
        reader = pacsv.open_csv(
            source.path, read_options=pacsv.ReadOptions(block_size=1 << 22), convert_options=options
        )
        for batch in reader:
            yield batch.to_pydict()
    else:
        columns: dict[str, list[Any]] = {name: [] for name in wanted}
        with source.path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = json.loads(line)
                for name in wanted:
                    columns[name].append(record.get(name))
                if len(columns[wanted[0]]) >= BATCH_ROWS:
                    yield columns
                    columns = {name: [] for name in wanted}
        if columns[wanted[0]]:
            yield columns
