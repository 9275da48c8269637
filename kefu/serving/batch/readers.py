"""Streaming readers: one input file in, `Chunk`s of at most `chunk_size` rows out.

A chunk is the unit of scoring and of commit. Chunks never span two files and are cut the same
way on every run over the same file, which is what lets `--resume` skip committed chunks by
count. A row whose text cannot be scored is never dropped: it leaves the chunk as a reject
naming the file, the line (CSV, JSONL: the physical line the record starts on) or the row
(Parquet: 1-based row number) and a reason from `REJECT_REASONS`.

Memory: a reader holds one chunk (plus one Parquet record batch) at a time.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kefu.errors import DataError
from kefu.serving.batch.sources import InputFile
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS
from kefu.serving.tokenization import normalize_text

REJECT_REASONS = {
    "missing_text": "the text field is absent or null",
    "not_text": "the text field holds a number, boolean, list or object, not a string",
    "empty_text": "the text is empty or whitespace only",
    "text_too_long": "the text is longer than --max-text-chars (KEFU_MAX_TEXT_CHARS)",
    "undecodable_text": "the text is not valid UTF-8",
    "invalid_json": "the JSONL line is not valid JSON",
    "not_an_object": "the JSONL line is not a JSON object",
    "malformed_row": "the CSV record has a different number of fields than the header",
}
JSON_KINDS = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}
SURROGATE = re.compile("[\ud800-\udfff]")  # undecodable bytes, kept by errors="surrogateescape"
csv.field_size_limit(sys.maxsize)  # chat logs paste long order cards; the default is 128 KiB


@dataclass
class Chunk:
    index: int  # position of this chunk among all chunks of the run (file order, then row order)
    file: str
    table: pa.Table  # input columns of the rows to score, rejected rows removed
    texts: list[str]  # the text of each row of `table`, same order
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0  # len(texts) + len(rejects)


@dataclass
class _Record:
    position: int  # line (CSV, JSONL) or row (Parquet), 1-based
    values: dict[str, Any] | None  # None when the record itself is broken (see `problem`)
    problem: tuple[str, str] | None = None  # (reason, detail)


def text_problem(value: Any, max_chars: int = DEFAULT_MAX_TEXT_CHARS) -> tuple[str, str] | None:
    """Why `value` cannot be scored as a message text, or None when it can.

    Over `max_chars` characters it is rejected, as the server rejects it (kefu/serving/limits.py).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing_text", "text is null or absent"
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            return (
                "undecodable_text",
                f"invalid UTF-8 byte 0x{value[exc.start]:02x} at byte {exc.start}",
            )
    if not isinstance(value, str):
        kind = JSON_KINDS.get(type(value), f"a {type(value).__name__}")
        return "not_text", f"text is {kind}, expected a string"
    bad = SURROGATE.search(value)
    if bad:
        byte = ord(bad.group()) - 0xDC00
        detail = f"invalid UTF-8 byte 0x{byte:02x}" if 0x80 <= byte <= 0xFF else "lone surrogate"
        return "undecodable_text", f"{detail} at character {bad.start()}"
    if not normalize_text(value):
        return "empty_text", "text is empty or whitespace only"
    if len(value) > max_chars:
        return "text_too_long", f"text has {len(value)} characters; the limit is {max_chars}"
    return None


def read_chunks(
    source: InputFile,
    *,
    text_col: str,
    id_col: str | None,
    chunk_size: int,
    first_index: int = 0,
    skip: int = 0,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> Iterator[Chunk]:
    """Chunks of one file, numbered from `first_index`; the first `skip` are counted, not built."""
    position_key = "row" if source.format == "parquet" else "line"
    for number, rows in enumerate(_raw_chunks(source, chunk_size)):
        if number < skip:
            continue
        yield _build_chunk(
            first_index + number, source, rows, text_col, id_col, position_key, max_text_chars
        )


def count_chunks(source: InputFile, chunk_size: int) -> int:
    """How many chunks a file yields (reads it once; used to skip whole committed files)."""
    return sum(1 for _ in _raw_chunks(source, chunk_size))


def _raw_chunks(
    source: InputFile, chunk_size: int
) -> Iterator[list[_Record] | tuple[int, pa.Table]]:
    try:
        if source.format == "parquet":
            yield from _parquet_tables(source, chunk_size)
        else:
            records = _csv_records(source) if source.format == "csv" else _jsonl_records(source)
            batch: list[_Record] = []
            for record in records:
                batch.append(record)
                if len(batch) == chunk_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
    except DataError:
        raise
    except (OSError, csv.Error, pa.ArrowException) as exc:
        raise DataError(f"reading stopped: {exc}", file=str(source.path)) from None


def _jsonl_records(source: InputFile) -> Iterator[_Record]:
    with source.path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue  # blank lines are layout, not rows
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8", errors="surrogateescape")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield _Record(number, None, ("invalid_json", f"{exc.msg} at column {exc.colno}"))
                continue
            if not isinstance(record, dict):
                yield _Record(
                    number, None, ("not_an_object", f"found a JSON {type(record).__name__}")
                )
                continue
            yield _Record(number, record)


def _csv_records(source: InputFile) -> Iterator[_Record]:
    with source.path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        start = reader.line_num + 1
        for values in reader:
            number, start = start, reader.line_num + 1  # a quoted field may span several lines
            if not values:
                continue
            if len(values) != len(header):
                detail = f"expected {len(header)} fields, found {len(values)}"
                yield _Record(number, None, ("malformed_row", detail))
                continue
            yield _Record(number, dict(zip(header, values, strict=True)))


def _parquet_tables(source: InputFile, chunk_size: int) -> Iterator[tuple[int, pa.Table]]:
    """(first row number, table of exactly `chunk_size` rows, the last one shorter)."""
    parquet = pq.ParquetFile(source.path)
    pending: list[pa.RecordBatch] = []
    pending_rows, next_row = 0, 1
    for batch in parquet.iter_batches(batch_size=chunk_size):
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= chunk_size:
            table = pa.Table.from_batches(pending)
            yield next_row, table.slice(0, chunk_size)
            rest = table.slice(chunk_size)
            pending, pending_rows = rest.to_batches(), rest.num_rows
            next_row += chunk_size
    if pending_rows:
        yield next_row, pa.Table.from_batches(pending)


def _build_chunk(
    index: int,
    source: InputFile,
    rows: list[_Record] | tuple[int, pa.Table],
    text_col: str,
    id_col: str | None,
    position_key: str,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> Chunk:
    """Split raw rows into rows to score (a table plus their texts) and rejects."""
    file = str(source.path)
    if isinstance(rows, tuple):
        first_row, table = rows
        records = [_Record(first_row + i, None) for i in range(table.num_rows)]
        text_values = table.column(text_col).to_pylist()
        id_values = table.column(id_col).to_pylist() if id_col else [None] * table.num_rows
    else:
        table, records = None, rows
        text_values = [_field(r, text_col) for r in records]
        id_values = [_field(r, id_col) for r in records]
    keep: list[int] = []
    texts: list[str] = []
    rejects: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        problem = record.problem or text_problem(text_values[i], max_text_chars)
        if problem is None:
            keep.append(i)
            value = text_values[i]
            texts.append(value.decode("utf-8") if isinstance(value, bytes) else value)
            continue
        reject: dict[str, Any] = {"file": file, position_key: record.position}
        reject.update(reason=problem[0], detail=problem[1])
        if id_col:
            reject["id"] = _json_safe(id_values[i])
        rejects.append(reject)
    if table is not None:
        kept = table.take(pa.array(keep, pa.int64())) if len(keep) < table.num_rows else table
    else:
        kept = _records_table([records[i].values or {} for i in keep], source.format)
    return Chunk(index, file, kept, texts, rejects, len(records))


def _field(record: _Record, name: str | None) -> Any:
    return record.values.get(name) if record.values is not None and name else None


def _records_table(records: list[dict[str, Any]], fmt: str) -> pa.Table:
    """Arrow table of CSV or JSONL records; columns in order of first appearance."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {}
    for name in names:
        values = [_repair(record.get(name)) for record in records]
        columns[name] = pa.array(values, pa.string()) if fmt == "csv" else _json_column(values)
    return pa.table(columns) if columns else pa.table({})


def _json_column(values: list[Any]) -> pa.Array:
    """Arrow's own type for a JSONL column; JSON text when the values mix types."""
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array(
            [
                None
                if v is None
                else v
                if isinstance(v, str)
                else json.dumps(v, ensure_ascii=False)
                for v in values
            ],
            pa.string(),
        )


def _repair(value: Any) -> Any:
    """A pass-through string with undecodable bytes keeps the rest, with U+FFFD for the bytes."""
    if isinstance(value, str) and SURROGATE.search(value):
        return SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: _repair(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_repair(item) for item in value]
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, str | int | bool) or value is None:
        return _repair(value)
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return str(value)
