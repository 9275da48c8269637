"""One loader for labelled messages: JSONL, CSV, TSV, Parquet, xlsx or a Hugging Face dataset.

Usage: `data = load_labelled("logs.csv", text_col="content")`; `data.rows`, `data.rejects`.

Files are read by `kefu.tabular`, the reader batch scoring and the report use too. Rows that
cannot be used are not dropped silently: each becomes a `kefu.tabular.Reject` naming the file,
line, column and the reason, and `strict=True` turns any reject into a `DataError`. A row may
leave a head's label empty: that head is then not trained or scored on it. Labels may be
written as ids, Chinese names or near spellings (`label_names.py`); Label Studio and doccano
exports are read as they are downloaded (`annotation_exports.py`).
"""

from __future__ import annotations

import hashlib
import math
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kefu.errors import DataError
from kefu.serving.taxonomy import HEADS, Taxonomy, load_taxonomy
from kefu.tabular import (
    ReadOptions,
    Record,
    Reject,
    as_text,
    json_safe,
    read_columns,
    read_records,
    repair,
    table_file,
    text_problem,
    write_rejects,
)
from kefu.tabular.options import MAX_RECORD_LINES
from kefu.training.data.annotation_exports import detect_export, export_records
from kefu.training.data.label_names import LabelNames

MAX_REJECTS_IN_ERROR = 5
__all__ = ["LabelledData", "LabelledRow", "Reject", "load_labelled", "write_rejects"]


@dataclass
class LabelledRow:
    id: str
    text: str
    labels: dict[str, str | None]
    line: int  # 1-based line (JSONL, CSV) or row number (Parquet, datasets)
    extra: dict[str, Any] = field(default_factory=dict)  # other columns, passed through
    unit: str = "line"  # what `line` counts: "row" in Parquet and xlsx (`Record.unit`)


@dataclass
class LabelledData:
    source: str
    rows: list[LabelledRow]
    rejects: list[Reject]
    # head -> its label column when the file has no such column: every row is unlabelled for
    # that head, which a partial file means on purpose and a misnamed column by mistake
    missing_columns: dict[str, str] = field(default_factory=dict)
    columns_found: list[str] = field(default_factory=list)

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

    def missing_column_notes(self, option: str) -> list[str]:
        """One line per head whose column the file lacks; `option` is how to name the column
        (`--{head}-col NAME` on a command, `--set {head}_column=NAME` for training)."""
        return [
            f"{self.source}: no column {column!r}, so no row is labelled for {head}; columns "
            f"found: {', '.join(self.columns_found)}; if one of them holds the {head}, name it "
            f"with {option.format(head=head)}"
            for head, column in self.missing_columns.items()
        ]


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
    encoding: str | None = None,
    max_record_lines: int = MAX_RECORD_LINES,
) -> LabelledData:
    """Read and validate labelled rows; see the module docstring for what becomes a reject.

    `encoding` forces the text encoding of CSV/TSV/JSONL files (default: detected per file);
    a CSV/TSV record over more than `max_record_lines` physical lines is rejected.
    """
    taxonomy = taxonomy or load_taxonomy()
    names = LabelNames(taxonomy)
    columns = Columns(text_col, intent_col, urgency_col, emotion_col, id_col)
    export = detect_export(Path(source)) if isinstance(source, str | Path) else None
    options = ReadOptions(encoding=encoding, max_record_lines=max_record_lines)
    if export is not None:
        name = str(source)
        head_columns = {head: columns.label_column(head) for head in HEADS}
        records: Iterable[Record] = export_records(
            Path(source), export, text_col, head_columns, names, options
        )
        columns = Columns(text_col, intent_col, urgency_col, emotion_col, "id")
        found: list[str] | None = [text_col, *head_columns.values(), "id"]
    elif isinstance(source, str | Path):
        file = table_file(source)
        name = file.display_name
        found = read_columns(file, options)
        records = read_records(file, options)
    elif hasattr(source, "column_names") and hasattr(source, "__iter__"):
        name = (
            f"<datasets:{getattr(source, 'info', None) and source.info.dataset_name or 'dataset'}>"
        )
        found = list(source.column_names)
        records = (Record(i + 1, i + 1, dict(row)) for i, row in enumerate(source))
    else:
        raise DataError(
            f"cannot load {type(source).__name__}: expected a file path or a datasets.Dataset"
        )
    _check_columns(name, found, columns)
    data = _validate(name, iter(records), names, columns)
    if export is not None:
        data.missing_columns = {}  # an export names a head only on the tasks labelled for it
    if strict and data.rejects:
        shown = "\n  ".join(reject.describe() for reject in data.rejects[:MAX_REJECTS_IN_ERROR])
        more = len(data.rejects) - MAX_REJECTS_IN_ERROR
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(
            f"{len(data.rejects)} rejected rows (strict mode):\n  {shown}{tail}", file=name
        )
    return data


def _check_columns(name: str, found: list[str] | None, columns: Columns) -> None:
    if found is None:
        return  # no header and no JSON object: the records can only be rejects
    if columns.text not in found:
        raise DataError(
            f"text column {columns.text!r} is missing; found columns {found}; "
            "name the text column with --text-col (kefu train: --set text_column=NAME)",
            file=name,
            column=columns.text,
        )
    label_columns = [columns.label_column(head) for head in HEADS]
    if not any(column in found for column in label_columns):
        raise DataError(
            f"none of the label columns {label_columns} is present; found columns {found}; "
            "name the ones that hold labels with --intent-col, --urgency-col, --emotion-col "
            "(kefu train: --set intent_column=NAME, ...)",
            file=name,
        )


def _validate(
    name: str, records: Iterator[Record], allowed: LabelNames, columns: Columns
) -> LabelledData:
    used = {columns.text, columns.id, *(columns.label_column(head) for head in HEADS)}
    rows: list[LabelledRow] = []
    rejects: list[Reject] = []
    seen_ids: dict[str, int] = {}
    keys: dict[str, None] = {}  # every column or JSON key of the file, in order of first use
    count = 0
    for record in records:
        count += 1
        values = record.values or {}
        keys.update(dict.fromkeys(values))
        raw_id = values.get(columns.id)
        row_id = (
            str(record.line)
            if raw_id is None or _is_nan(raw_id) or str(raw_id) == ""
            else str(repair(raw_id))
        )
        labels, problem = _check_row(record, columns, allowed)
        if problem is None and row_id in seen_ids:
            detail = f"duplicate id {row_id!r} (first on {record.unit} {seen_ids[row_id]})"
            problem = (columns.id, "duplicate_id", detail)
        if problem is not None:
            rejects.append(Reject.of(name, record, json_safe(raw_id), *problem))
            continue
        seen_ids[row_id] = record.line
        extra = {key: repair(value) for key, value in values.items() if key not in used}
        text = as_text(values[columns.text])
        rows.append(LabelledRow(row_id, text, labels, record.line, extra, record.unit))
    if count == 0:
        raise DataError("no data rows found", file=name)
    missing = {
        head: columns.label_column(head)
        for head in HEADS
        if keys and columns.label_column(head) not in keys
    }
    return LabelledData(name, rows, rejects, missing, [str(key) for key in keys])


def _check_row(
    record: Record, columns: Columns, allowed: LabelNames
) -> tuple[dict[str, str | None], tuple[str | None, str, str] | None]:
    """The row's labels, and (column, reason, detail) when the row cannot be used."""
    if record.problem is not None:
        return {}, (None, *record.problem)
    values = record.values or {}
    problem = text_problem(values.get(columns.text))
    if problem is not None:
        return {}, (columns.text, *problem)
    labels, bad = _labels(values, columns, allowed)
    if bad:
        return labels, (bad[0], "unknown_label", bad[1])
    if all(value is None for value in labels.values()):
        return labels, (None, "no_label", "row has no label for any head")
    return labels, None


def _labels(
    record: dict[str, Any], columns: Columns, allowed: LabelNames
) -> tuple[dict[str, str | None], tuple[str, str] | None]:
    """Each head's id; ids, Chinese names and near spellings resolve (`label_names.py`)."""
    labels: dict[str, str | None] = {}
    for head in HEADS:
        column = columns.label_column(head)
        value = record.get(column)
        if value is None or _is_nan(value) or (isinstance(value, str) and not value.strip()):
            labels[head] = None
            continue
        value = str(repair(value)).strip()
        resolved = allowed.resolve(head, value)
        if resolved is None:
            return labels, (column, allowed.unknown_message(head, value))
        labels[head] = resolved
    return labels, None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def validate_command(source: str, columns: Mapping[str, Any]) -> str:
    """The `kefu data validate` command that reads `source` as `load_labelled(**columns)` did:
    the columns that are not the defaults named with validate's options, quoted for a shell."""
    flags = "".join(
        f" --{flag.replace('_', '-')} {shlex.quote(str(name))}"
        for flag, name in columns.items()
        if name is not None and name != getattr(Columns(), flag.removesuffix("_col"))
    )
    return f"kefu data validate {source}{flags}"


def trained_columns(training_config: Mapping[str, Any]) -> dict[str, str]:
    """The column names a bundle was trained with (its training config's `text_column`, ...), as
    `load_labelled` keywords: a team's dev and test files come from the same export as its
    training files, so they are read with the same names unless a `--*-col` flag says otherwise."""
    columns = {}
    for field_name in ("text", "intent", "urgency", "emotion", "id"):
        value = training_config.get(f"{field_name}_column")
        if isinstance(value, str) and value:
            columns[f"{field_name}_col"] = value
    return columns
