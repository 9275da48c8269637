"""Records of the line-based formats: CSV/TSV records and JSONL objects, with their lines.

Each iterator takes numbered physical lines (`decoding.py`) and yields one `Record` per record:
its first and last physical line, its values as a dict, or the problem that makes it unusable.
Blank lines are layout, not records. After the last record `lines` holds how many physical
lines the file had, and every one of them is accounted for: header + blank + record lines.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kefu.errors import DataError
from kefu.tabular.values import SURROGATE, undecodable_detail

csv.field_size_limit(sys.maxsize)  # chat logs paste long order cards; the default is 128 KiB
COLUMN_SCAN_LINES = 1000  # JSONL: how far to look for the first object when listing columns


@dataclass
class Record:
    line: int  # first physical line (CSV, TSV, JSONL) or 1-based row (Parquet)
    end_line: int  # last physical line; > line when a quoted field spans lines
    values: dict[str, Any] | None  # None when the record cannot be read (see `problem`)
    problem: tuple[str, str] | None = None  # (reason, detail) of an unusable record


class _Feed:
    """The csv module's line source: remembers which numbered lines the current record used."""

    def __init__(self, lines: Iterator[tuple[int, str]]):
        self.lines = lines
        self.taken: list[tuple[int, str]] = []
        self.last = 0  # number of the last line handed out

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        number, text = next(self.lines)
        self.taken.append((number, text))
        self.last = number
        return text


class CsvRows:
    """CSV or TSV records: `header` on construction, then iterate for `Record`s."""

    def __init__(self, lines: Iterator[tuple[int, str]], delimiter: str, file: str, encoding: str):
        self.file, self.encoding = file, encoding
        self.feed = _Feed(lines)
        self.reader = csv.reader(self.feed, delimiter=delimiter)
        self.header_lines = self.blank_lines = self.record_lines = 0
        self.header = self._read_header()

    @property
    def lines(self) -> int:
        return self.feed.last

    def __iter__(self) -> Iterator[Record]:
        if self.header is None:
            return
        width = len(self.header)
        while (fields := self._next()) is not None:
            first, last = self.feed.taken[0][0], self.feed.taken[-1][0]
            if not fields:
                self.blank_lines += 1
                continue
            self.record_lines += last - first + 1
            if len(fields) != width:
                detail = f"expected {width} fields, found {len(fields)}"
                yield Record(first, last, None, ("malformed_row", detail))
                continue
            yield Record(first, last, dict(zip(self.header, fields, strict=True)))
        self._check_accounting()

    def _next(self) -> list[str] | None:
        self.feed.taken = []
        return next(self.reader, None)

    def _read_header(self) -> list[str] | None:
        while (fields := self._next()) is not None and not fields:
            self.blank_lines += 1
        if fields is None:
            return None
        self.header_lines = len(self.feed.taken)
        header = [name.strip() for name in fields]
        bad = next((name for name in header if SURROGATE.search(name)), None)
        if bad is not None:
            where = SURROGATE.search(bad)
            assert where is not None
            raise DataError(
                f"the header is not valid {self.encoding}: "
                f"{undecodable_detail(where.group(), where.start(), self.encoding)}",
                file=self.file,
                line=self.feed.taken[0][0],
            )
        if len(set(header)) != len(header):
            raise DataError(f"the header repeats column names: {header}", file=self.file, line=1)
        return header

    def _check_accounting(self) -> None:
        counted = self.header_lines + self.blank_lines + self.record_lines
        if counted != self.lines:
            raise RuntimeError(
                f"{self.file}: line accounting broken: {self.lines} lines read but header "
                f"{self.header_lines} + blank {self.blank_lines} + records {self.record_lines}"
            )


class JsonRows:
    """JSON Lines objects, one per non-blank line."""

    def __init__(self, lines: Iterator[tuple[int, str]], file: str, arrays_allowed: bool = True):
        self.source, self.file = lines, file
        self.arrays_allowed = arrays_allowed  # False for `.json`: an array there is a whole file
        self.lines = 0

    def __iter__(self) -> Iterator[Record]:
        for number, text in self.source:
            self.lines = number
            if not text.strip():
                continue  # blank lines are layout, not rows
            if not self.arrays_allowed and text.lstrip().startswith("["):
                raise DataError(
                    "a .json file must hold one JSON object per line (JSON Lines); a JSON array "
                    "cannot be streamed: convert it, e.g. jq -c '.[]' in.json > out.jsonl",
                    file=self.file,
                    line=number,
                )
            self.arrays_allowed = True
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Record(
                    number, number, None, ("invalid_json", f"{exc.msg} at column {exc.colno}")
                )
                continue
            if not isinstance(record, dict):
                kind = type(record).__name__
                yield Record(number, number, None, ("not_an_object", f"found a JSON {kind}"))
                continue
            yield Record(number, number, record)


def json_columns(lines: Iterator[tuple[int, str]]) -> list[str] | None:
    """Keys of the first JSON object among the first lines (None: no object found)."""
    for number, text in lines:
        if number > COLUMN_SCAN_LINES:
            break
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue  # a bad line becomes a reject later; the next line shows the columns
        if isinstance(record, dict):
            return list(record)
    return None
