"""Exports of annotation tools read as labelled rows: Label Studio JSON and doccano JSONL.

A file is recognised by its content, so `kefu data validate`, `kefu train` and `kefu evaluate`
take the export as it is downloaded:
- **Label Studio** (Export -> JSON): a JSON array of tasks `{"id", "data": {"text": ...},
  "annotations": [{"result": [{"from_name": "intent", "type": "choices", "value": {"choices":
  ["refund_return"]}}, ...], "was_cancelled": false}]}`. The choice control's `from_name` names
  the head (`intent`, `urgency`, `emotion`, or the column names given with --intent-col etc.);
  the last annotation that was not cancelled counts; a task without one becomes a `no_label`
  reject. The text is `data[text column]`.
- **doccano** (text classification, Export -> JSONL): one object per line
  `{"id", "text", "label": ["refund_return", "high", "焦虑/着急"]}` (`labels` or `cats` too).
  Each label is given to the head whose id or Chinese name it is; `intent:refund_return` names
  the head explicitly. A label no head knows is kept under its own head so the loader rejects
  the row with a "did you mean".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kefu.errors import DataError
from kefu.serving.taxonomy import HEADS
from kefu.tabular.decoding import decoded_lines
from kefu.tabular.textrows import JsonRows, Record
from kefu.training.data.label_names import LabelNames

SNIFF_BYTES = 1 << 16


def detect_export(path: Path) -> str | None:
    """ "label-studio", "doccano" or None (an ordinary labelled file), from the first bytes."""
    if not path.is_file() or path.suffix.lower() not in (".json", ".jsonl", ".ndjson"):
        return None
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES).decode("utf-8-sig", errors="replace").lstrip()
    if head.startswith("[") and '"annotations"' in head and '"data"' in head:
        return "label-studio"
    first = head.split("\n", 1)[0]
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return None
    if isinstance(record, dict) and any(
        isinstance(record.get(key), list) for key in ("label", "labels", "cats")
    ):
        return "doccano"
    return None


def export_records(
    path: Path, kind: str, text_col: str, head_columns: dict[str, str], names: LabelNames
) -> Iterator[Record]:
    """Records with `text_col`, the head columns and `id`, one per task or line."""
    if kind == "label-studio":
        yield from _label_studio(path, text_col, head_columns)
    else:
        yield from _doccano(path, text_col, head_columns, names)


def _label_studio(path: Path, text_col: str, head_columns: dict[str, str]) -> Iterator[Record]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable Label Studio JSON export: {exc}", file=str(path)) from None
    if not isinstance(tasks, list):
        raise DataError("a Label Studio export is a JSON array of tasks", file=str(path))
    by_control = {column: head for head, column in head_columns.items()}
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            yield Record(number, number, None, ("not_an_object", "task without a data object"))
            continue
        values: dict[str, Any] = {"id": task.get("id"), text_col: task["data"].get(text_col)}
        annotations = [
            a
            for a in task.get("annotations") or []
            if isinstance(a, dict) and not a.get("was_cancelled")
        ]
        for item in (annotations[-1].get("result") or []) if annotations else []:
            head = by_control.get(str(item.get("from_name")))
            choices = (item.get("value") or {}).get("choices") or []
            if head and choices:
                values[head_columns[head]] = str(choices[0])
        yield Record(number, number, values)


def _doccano(
    path: Path, text_col: str, head_columns: dict[str, str], names: LabelNames
) -> Iterator[Record]:
    """doccano's JSONL lines through the tabular JSON Lines reader (same rejects, same lines)."""
    with path.open("rb") as handle:
        for record in JsonRows(decoded_lines(handle, "utf-8"), str(path)):
            if record.values is None:
                yield record
                continue
            labels: Any = next(
                (
                    record.values[key]
                    for key in ("label", "labels", "cats")
                    if record.values.get(key)
                ),
                [],
            )
            values: dict[str, Any] = {
                "id": record.values.get("id"),
                text_col: record.values.get(text_col),
            }
            for label in labels if isinstance(labels, list) else [labels]:
                head, value = _doccano_label(str(label), names)
                values[head_columns[head]] = value
            yield Record(record.line, record.end_line, values)


def _doccano_label(label: str, names: LabelNames) -> tuple[str, str]:
    """(head, value): `head:value`, else the head whose label it names (intent when none does)."""
    prefix, sep, rest = label.partition(":")
    if sep and prefix.strip() in HEADS:
        return prefix.strip(), rest.strip()
    found = names.head_of(label)
    return found if found else ("intent", label)
