"""One loader for labelled messages: JSONL, CSV, TSV, Parquet files or a Hugging Face dataset.

Usage: `data = load_labelled("logs.csv", text_col="content")`; `data.rows`, `data.rejects`.

Rows that cannot be used are not dropped silently: each becomes a `Reject` naming the file,
line and column and the reason, and `strict=True` turns any reject into a `DataError`. A row
may leave a head's label empty: that head is then not trained or scored on it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kefu.errors import DataError
from kefu.serving.taxonomy import HEADS, Taxonomy, load_taxonomy

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
MAX_REJECTS_IN_ERROR = 5


@dataclass
class LabelledRow:
    id: str
    text: str
    labels: dict[str, str | None]
    line: int  # 1-based line (JSONL, CSV) or row number (Parquet, datasets)
    extra: dict[str, Any] = field(default_factory=dict)  # other columns, passed through


@dataclass
class Reject:
    file: str
    line: int
    column: str | None
    reason: str
    raw: str = ""

    def describe(self) -> str:
        column = f", column {self.column!r}" if self.column else ""
        return f"{self.file}, line {self.line}{column}: {self.reason}"


@dataclass
class LabelledData:
    source: str
    rows: list[LabelledRow]
    rejects: list[Reject]

    def texts(self) -> list[str]:
        return [row.text for row in self.rows]

    def labels(self, head: str) -> list[str | None]:
        return [row.labels[head] for row in self.rows]

    def content_hash(self) -> str:
        """sha256 over ids, texts and labels: names the exact data a model was trained on."""
        digest = hashlib.sha256()
        for row in self.rows:
            fields = [row.id, row.text, *(row.labels[head] or "" for head in HEADS)]
            digest.update("\x1f".join(fields).encode("utf-8") + b"\x1e")
        return digest.hexdigest()


@dataclass(frozen=True)
class Columns:
    text: str = "text"
    intent: str = "intent"
    urgency: str = "urgency"
    emotion: str = "emotion"
    id: str = "id"

    def label_column(self, head: str) -> str:
        return getattr(self, head)


def load_labelled(
    source: str | Path | Any,
    *,
    taxonomy: Taxonomy | None = None,
    text_col: str = "text",
    intent_col: str = "intent",
    urgency_col: str = "urgency",
    emotion_col: str = "emotion",
    id_col: str = "id",
    strict: bool = False,
) -> LabelledData:
    """Read and validate labelled rows; see the module docstring for what becomes a reject."""
    taxonomy = taxonomy or load_taxonomy()
    columns = Columns(text_col, intent_col, urgency_col, emotion_col, id_col)
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(path)
        records, rejects = _read_file(path)
    elif hasattr(source, "column_names") and hasattr(source, "__iter__"):
        name = (
            f"<datasets:{getattr(source, 'info', None) and source.info.dataset_name or 'dataset'}>"
        )
        records, rejects = _read_records((i + 1, dict(r)) for i, r in enumerate(source)), []
    else:
        raise DataError(
            f"cannot load {type(source).__name__}: expected a file path or a datasets.Dataset"
        )
    data = _validate(name, records, rejects, taxonomy, columns)
    if strict and data.rejects:
        shown = "\n  ".join(reject.describe() for reject in data.rejects[:MAX_REJECTS_IN_ERROR])
        more = len(data.rejects) - MAX_REJECTS_IN_ERROR
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(
            f"{len(data.rejects)} rejected rows (strict mode):\n  {shown}{tail}", file=name
        )
    return data


def write_rejects(rejects: Iterable[Reject], path: str | Path) -> int:
    """Write rejects as JSONL (file, line, column, reason, raw); returns how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for reject in rejects:
            handle.write(json.dumps(asdict(reject), ensure_ascii=False) + "\n")
            count += 1
    return count


def _read_file(path: Path) -> tuple[Iterator[tuple[int, dict[str, Any]]], list[Reject]]:
    if not path.exists():
        raise DataError("file does not exist", file=str(path))
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"unknown file type {suffix!r}; expected one of {', '.join(SUFFIXES)}", file=str(path)
        )
    if suffix == ".parquet":
        return _read_parquet(path), []
    rejects: list[Reject] = []
    lines = _decoded_lines(path, rejects)
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path, lines, rejects), rejects
    return _read_csv(path, lines, "\t" if suffix == ".tsv" else ",", rejects), rejects


def _decoded_lines(path: Path, rejects: list[Reject]) -> list[tuple[int, str]]:
    """(line number, text) of every line that decodes as UTF-8; the others become rejects."""
    decoded = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                rejects.append(
                    Reject(
                        str(path),
                        number,
                        None,
                        f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
                        repr(raw[:200]),
                    )
                )
                continue
            if number == 1:
                text = text.lstrip("\ufeff")
            decoded.append((number, text))
    return decoded


def _read_jsonl(
    path: Path, lines: list[tuple[int, str]], rejects: list[Reject]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            rejects.append(Reject(str(path), number, None, f"invalid JSON: {exc.msg}", text[:200]))
            continue
        if not isinstance(record, dict):
            rejects.append(
                Reject(str(path), number, None, "expected a JSON object per line", text[:200])
            )
            continue
        yield number, record


def _read_csv(
    path: Path, lines: list[tuple[int, str]], delimiter: str, rejects: list[Reject]
) -> Iterator[tuple[int, dict[str, Any]]]:
    numbers = [number for number, _ in lines]
    reader = csv.reader((text for _, text in lines), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    consumed = reader.line_num
    for values in reader:
        number = numbers[
            min(consumed, len(numbers) - 1)
        ]  # the line a (multi-line) record starts on
        consumed = reader.line_num
        if not values or all(not value.strip() for value in values):
            continue
        if len(values) != len(header):
            rejects.append(
                Reject(
                    str(path),
                    number,
                    None,
                    f"expected {len(header)} fields, found {len(values)}",
                    delimiter.join(values)[:200],
                )
            )
            continue
        yield number, dict(zip(header, values, strict=True))


def _read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses
        raise DataError(f"not a readable Parquet file: {exc}", file=str(path)) from None
    number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for record in batch.to_pylist():
            number += 1
            yield number, record


def _read_records(
    records: Iterable[tuple[int, dict[str, Any]]],
) -> Iterator[tuple[int, dict[str, Any]]]:
    yield from records


def _validate(
    name: str,
    records: Iterator[tuple[int, dict[str, Any]]],
    rejects: list[Reject],
    taxonomy: Taxonomy,
    columns: Columns,
) -> LabelledData:
    allowed = {head: set(taxonomy.labels(head)) for head in HEADS}
    rows: list[LabelledRow] = []
    seen_ids: dict[str, int] = {}
    seen_columns: set[str] | None = None
    for number, record in records:
        if seen_columns is None:
            seen_columns = set(record)
            if columns.text not in seen_columns:
                raise DataError(
                    f"text column {columns.text!r} is missing; found columns {sorted(seen_columns)}; "
                    "name the text column with --text-col",
                    file=name,
                    column=columns.text,
                )
            label_columns = [columns.label_column(head) for head in HEADS]
            if not any(column in seen_columns for column in label_columns):
                raise DataError(
                    f"none of the label columns {label_columns} is present; found {sorted(seen_columns)}",
                    file=name,
                )
        raw = json.dumps(record, ensure_ascii=False, default=str)[:200]
        text = record.get(columns.text)
        if not isinstance(text, str):
            reason = (
                "text is missing"
                if text is None or _is_nan(text)
                else f"text must be a string, found {type(text).__name__}"
            )
            rejects.append(Reject(name, number, columns.text, reason, raw))
            continue
        if not text.strip():
            rejects.append(
                Reject(name, number, columns.text, "text is empty or whitespace only", raw)
            )
            continue
        labels, bad = _labels(record, columns, allowed)
        if bad:
            rejects.append(Reject(name, number, bad[0], bad[1], raw))
            continue
        if all(value is None for value in labels.values()):
            rejects.append(Reject(name, number, None, "row has no label for any head", raw))
            continue
        row_id = record.get(columns.id)
        row_id = (
            str(number) if row_id is None or _is_nan(row_id) or str(row_id) == "" else str(row_id)
        )
        if row_id in seen_ids:
            rejects.append(
                Reject(
                    name,
                    number,
                    columns.id,
                    f"duplicate id {row_id!r} (first on line {seen_ids[row_id]})",
                    raw,
                )
            )
            continue
        seen_ids[row_id] = number
        used = {columns.text, columns.id, *(columns.label_column(head) for head in HEADS)}
        extra = {key: value for key, value in record.items() if key not in used}
        rows.append(LabelledRow(row_id, text, labels, number, extra))
    if seen_columns is None and not rejects:
        raise DataError("no data rows found", file=name)
    rejects.sort(key=lambda reject: reject.line)
    return LabelledData(name, rows, rejects)


def _labels(
    record: dict[str, Any], columns: Columns, allowed: dict[str, set[str]]
) -> tuple[dict[str, str | None], tuple[str, str] | None]:
    labels: dict[str, str | None] = {}
    for head in HEADS:
        column = columns.label_column(head)
        value = record.get(column)
        if value is None or _is_nan(value) or (isinstance(value, str) and not value.strip()):
            labels[head] = None
            continue
        value = str(value).strip()
        if value not in allowed[head]:
            return labels, (
                column,
                f"unknown {head} label {value!r}; expected one of {sorted(allowed[head])}",
            )
        labels[head] = value
    return labels, None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
