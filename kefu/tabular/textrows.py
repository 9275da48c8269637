"""A record with its physical lines, and the JSON Lines reader (CSV/TSV: `csvrows.py`).

Each reader takes numbered physical lines (`decoding.py`) and yields one `Record` per record:
its first and last physical line, its values as a dict, or the problem that makes it unusable.
Blank lines are layout, not records. After the last record `lines` holds how many physical
lines the file had. A `.json` file that holds one array is read by `jsonarray.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kefu.errors import DataError
from kefu.tabular.decoding import BOM

COLUMN_SCAN_LINES = 1000  # JSON: how far (lines, elements) to look for objects when listing columns
ROW = "row"  # `Record.unit` of Parquet and xlsx records


@dataclass
class Record:
    line: int  # first physical line (CSV, TSV, JSONL), 1-based row (Parquet, xlsx) or element
    end_line: int  # last physical line; > line when a quoted field spans lines
    values: dict[str, Any] | None  # None when the record cannot be read (see `problem`)
    problem: tuple[str, str] | None = None  # (reason, detail) of an unusable record
    # what `line` counts, as messages name it: "element" for a JSON array (`jsonarray.py`), "row"
    # for Parquet and a worksheet (as the spreadsheet shows it), "line" for the text formats
    unit: str = "line"


class JsonRows:
    """JSON Lines objects, one per non-blank line."""

    def __init__(self, lines: Iterator[tuple[int, str]], file: str):
        self.source, self.file = lines, file
        self.lines = 0

    def __iter__(self) -> Iterator[Record]:
        for number, text in self.source:
            self.lines = number
            if not text.strip():
                continue  # blank lines are layout, not rows
            try:
                # a cut-off line fails at its end; a BOM opens each part of files joined with cat
                record = json.loads(text.rstrip("\r\n").removeprefix(BOM))
            except json.JSONDecodeError as exc:
                yield Record(
                    number, number, None, ("invalid_json", f"{exc.msg} (column {exc.colno})")
                )
                continue
            if not isinstance(record, dict):
                yield Record(number, number, None, not_an_object(record))
                continue
            yield Record(number, number, record)


def column_names(cells: Sequence[str | None]) -> list[str]:
    """Header cells as column names: stripped, an empty one named by its position
    (`column_3`), as a sheet has columns without a title and Excel's CSV ends its header with
    `,,` for the empty columns of its used range."""
    return [(cell or "").strip() or f"column_{i}" for i, cell in enumerate(cells, start=1)]


def header_names(
    cells: Sequence[str | None], file: str, line: int, unit: str = "line"
) -> list[str]:
    """`column_names`, refused when a name repeats: no option could say which column it means."""
    names = column_names(cells)
    columns: dict[str, list[str]] = {}  # name -> its column numbers
    for number, name in enumerate(names, start=1):
        columns.setdefault(name, []).append(str(number))
    repeats = [
        f"{name!r} in columns {', '.join(at)}" for name, at in columns.items() if len(at) > 1
    ]
    if repeats:
        raise DataError(
            f"the header repeats column names: {'; '.join(repeats)}; give each its own name",
            file=file,
            line=line,
            unit=unit,
        )
    return names


def not_an_object(value: Any) -> tuple[str, str]:
    """The problem of a JSON value where a row's object belongs."""
    return "not_an_object", f"found a JSON {type(value).__name__}"


def json_columns(records: Iterable[Record]) -> list[str] | None:
    """Keys of the JSON objects among the first records (JSON Lines or an array's elements), in
    order of first use (None: no object found). All of them, not the first object's: one record
    without a key is that record's problem (a reject), not proof that the file lacks the column."""
    keys: dict[str, None] = {}
    found = False
    for record in records:
        if record.line > COLUMN_SCAN_LINES:
            break
        if record.values is not None:
            found = True
            keys.update(dict.fromkeys(record.values))
    return list(keys) if found else None
