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
Both are read by the one tabular reader (`export_records`), so an export gets the decoding,
rejects and numbering (a Label Studio task: its element) of any labelled file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from kefu.serving.taxonomy import HEADS
from kefu.tabular import DEFAULT_OPTIONS, ReadOptions, Record, read_records, table_file
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
    path: Path,
    kind: str,
    text_col: str,
    head_columns: dict[str, str],
    names: LabelNames,
    options: ReadOptions = DEFAULT_OPTIONS,
) -> Iterator[Record]:
    """Records with `text_col`, the head columns and `id`, one per task or line.

    Both exports go through the one tabular reader (a Label Studio export is a JSON array, read
    element by element): memory holds one task, and a broken task or line is a reject with its
    element or line number, the rest read on, as in any other labelled file."""
    to_values = _label_studio if kind == "label-studio" else _doccano
    for record in read_records(table_file(path), options):
        if record.values is None:
            yield record
            continue
        values, problem = to_values(record.values, text_col, head_columns, names)
        yield replace(record, values=values, problem=problem)


def _label_studio(
    task: dict[str, Any], text_col: str, head_columns: dict[str, str], names: LabelNames
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """A task's text and the choices of its last annotation that was not cancelled."""
    if not isinstance(task.get("data"), dict):
        return None, ("not_an_object", "task without a data object")
    values: dict[str, Any] = {"id": task.get("id"), text_col: task["data"].get(text_col)}
    annotations = [
        a
        for a in task.get("annotations") or []
        if isinstance(a, dict) and not a.get("was_cancelled")
    ]
    by_control = {column: head for head, column in head_columns.items()}
    for item in (annotations[-1].get("result") or []) if annotations else []:
        if not isinstance(item, dict):
            continue
        head = by_control.get(str(item.get("from_name")))
        value = item.get("value")
        choices = (value.get("choices") if isinstance(value, dict) else None) or []
        if head and isinstance(choices, list) and choices:
            values[head_columns[head]] = str(choices[0])
    return values, None


def _doccano(
    line: dict[str, Any], text_col: str, head_columns: dict[str, str], names: LabelNames
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """A line's text, each label under the head it names."""
    labels: Any = next(
        (line[key] for key in ("label", "labels", "cats") if line.get(key)),
        [],
    )
    values: dict[str, Any] = {"id": line.get("id"), text_col: line.get(text_col)}
    for label in labels if isinstance(labels, list) else [labels]:
        head, value = _doccano_label(str(label), names)
        values[head_columns[head]] = value
    return values, None


def _doccano_label(label: str, names: LabelNames) -> tuple[str, str]:
    """(head, value): `head:value`, else the head whose label it names (intent when none does)."""
    prefix, sep, rest = label.partition(":")
    if sep and prefix.strip() in HEADS:
        return prefix.strip(), rest.strip()
    found = names.head_of(label)
    return found if found else ("intent", label)
