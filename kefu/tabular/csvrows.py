"""CSV and TSV records with their physical lines, and recovery from broken quoting.

One unterminated quote makes a CSV parser read the following lines as part of one field, so
whole records vanish into another record's text (issue 14). The records are therefore parsed
strictly (a closing quote must be followed by a delimiter or the end of the line), and a record
over several physical lines is trusted only when it closes cleanly within `max_record_lines`
lines and `max_record_chars` characters. Otherwise:

- it closes cleanly, with the header's field count, but is too long: rejected whole with its
  line range (`record_too_long`); raise `--max-record-lines` for data with long messages;
- it does not close cleanly (a quote followed by text, the end of the file, too long to tell):
  its first line is rejected (`unclosed_quote`) and the lines after it are read again as
  records of their own, so the rows they hold are scored, not swallowed.

A malformed record keeps what could be read (`values`), so its id still names it. Every
physical line ends up in exactly one place: the header, a blank line, or one record's range;
`_check_accounting` proves it at the end of the file.
"""

from __future__ import annotations

import csv
import sys
from collections import deque
from collections.abc import Iterator

from kefu.errors import DataError
from kefu.tabular.decoding import BOM
from kefu.tabular.options import MAX_RECORD_CHARS
from kefu.tabular.textrows import Record, column_names, header_names
from kefu.tabular.values import SURROGATE, undecodable_detail

csv.field_size_limit(sys.maxsize)  # the length limit is ours (max_record_chars), in characters
# Files joined with `cat` or `copy a.csv+b.csv` repeat the header (with its BOM) where each
# one starts: such a line names the columns, it is no message to score or learn from.
REPEATED_HEADER = "the record repeats the header (files joined into one?); it holds no message"


class _TooLong(Exception):
    """Raised by the line feed when a record grows past `max_chars`."""


class _Feed:
    """The csv module's line source: remembers the lines of the current record, can unread."""

    def __init__(self, lines: Iterator[tuple[int, str]], max_chars: int):
        self.source = lines
        self.max_chars = max_chars
        self.pending: deque[tuple[int, str]] = deque()  # lines read again after a recovery
        self.taken: list[tuple[int, str]] = []
        self.chars = 0
        self.lines = 0  # physical lines read from the file so far

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.taken and self.chars > self.max_chars:
            raise _TooLong  # never more than one line past the limit in memory
        if self.pending:
            number, text = self.pending.popleft()
        else:
            number, text = next(self.source)
            self.lines = number
        self.taken.append((number, text))
        self.chars += len(text)
        return text

    def start(self) -> None:
        self.taken, self.chars = [], 0


class CsvRows:
    """CSV or TSV records: `header` on construction, then iterate for `Record`s."""

    def __init__(
        self,
        lines: Iterator[tuple[int, str]],
        delimiter: str,
        file: str,
        encoding: str,
        max_lines: int = 5,
        max_chars: int = MAX_RECORD_CHARS,
        encoding_fix: str | None = None,
    ):
        self.file, self.encoding, self.delimiter = file, encoding, delimiter
        self.encoding_fix = encoding_fix  # see ReadOptions.encoding_fix
        self.max_lines, self.max_chars = max_lines, max_chars
        self.feed = _Feed(lines, max_chars)
        self.reader = csv.reader(self.feed, delimiter=delimiter, strict=True)
        self.header_lines = self.blank_lines = self.record_lines = 0
        self.header = self._read_header()

    @property
    def lines(self) -> int:
        return self.feed.lines

    def __iter__(self) -> Iterator[Record]:
        if self.header is None:
            return
        while True:
            fields, error = self._next()
            taken = self.feed.taken
            if not taken:
                break
            if fields is not None and not any(fields) and len(taken) == 1:
                # an empty line, or one of delimiters only (`,,,`): what Excel writes for a row
                # of empty cells inside the sheet's used range; layout, as such a sheet row is
                self.blank_lines += 1
                continue
            record = self._record(fields, error, taken)
            self.record_lines += record.end_line - record.line + 1
            yield record
        self._check_accounting()

    def _record(self, fields: list[str] | None, error: str | None, taken: list) -> Record:
        first, last = taken[0][0], taken[-1][0]
        width = len(self.header or [])
        if fields is None and len(taken) == 1 and error != "too long":
            # one line with odd quoting (`1,"VIP"客户,x`): read leniently, as it always was
            fields = next(csv.reader([taken[0][1]], delimiter=self.delimiter))
        if fields is not None:
            too_long = self._too_long(len(taken), self.feed.chars)
            if too_long is not None and (len(taken) == 1 or len(fields) == width):
                return Record(first, last, self._values(fields), ("record_too_long", too_long))
            if len(taken) == 1 and len(fields) != width:
                detail = f"expected {width} fields, found {len(fields)}"
                return Record(first, last, self._values(fields), ("malformed_row", detail))
            if len(fields) == width:
                values = dict(zip(self.header or [], fields, strict=True))
                if column_names([field.removeprefix(BOM) for field in fields]) == self.header:
                    return Record(first, last, values, ("repeated_header", REPEATED_HEADER))
                return Record(first, last, values)
        # A quote opened on `first` ran over the lines after it: reject that line, read the
        # others again as records of their own.
        self.feed.pending.extendleft(reversed(taken[1:]))
        if error == "too long":
            lines = f"{len(taken)} line" + ("s" if len(taken) > 1 else "")
            where = f"it is still open after {lines} ({self.feed.chars} characters)"
        elif error is not None and "unexpected end of data" in error:
            where = f"it runs to the end of the file (line {last})"
        elif error is not None:
            where = f"it runs to line {last} ({error})"
        else:
            where = f"it runs to line {last} and leaves {len(fields or [])} fields, not {width}"
        again = f"; lines {first + 1}-{last} are read again as records" if last > first else ""
        partial = self._values(next(csv.reader([taken[0][1]], delimiter=self.delimiter)))
        detail = f"a quoted field opens on this line and does not close properly: {where}{again}"
        return Record(first, first, partial, ("unclosed_quote", detail))

    def _next(self) -> tuple[list[str] | None, str | None]:
        self.feed.start()
        try:
            return next(self.reader), None
        except StopIteration:
            return None, None
        except csv.Error as exc:
            return None, str(exc)
        except _TooLong:
            return None, "too long"

    def _too_long(self, lines: int, chars: int) -> str | None:
        if lines > self.max_lines:
            return (
                f"the record spans {lines} lines, more than --max-record-lines {self.max_lines}; "
                "it is well-formed: raise --max-record-lines to keep it"
            )
        if chars > self.max_chars:
            return f"the record holds {chars} characters, more than the limit of {self.max_chars}"
        return None

    def _values(self, fields: list[str]) -> dict[str, str]:
        """What a malformed record still tells (its id, mostly): fields by position."""
        return dict(zip(self.header or [], fields, strict=False))

    def _read_header(self) -> list[str] | None:
        while True:
            fields, error = self._next()
            if error is not None:
                raise DataError(
                    f"cannot read the header: {error}", file=self.file, line=self.feed.taken[0][0]
                )
            if fields is None:
                return None
            if any(fields):  # not an empty line, nor one of delimiters only
                break
            self.blank_lines += 1
        self.header_lines = len(self.feed.taken)
        for number, name in enumerate(column_names(fields), start=1):
            if bad := SURROGATE.search(name):
                # the position counts within the column's name, so say which column
                detail = undecodable_detail(
                    bad.group(), bad.start(), self.encoding, self.encoding_fix
                )
                raise DataError(
                    f"the header is not valid {self.encoding}: column {number}'s name: {detail}",
                    file=self.file,
                    line=self.feed.taken[0][0],
                )
        return header_names(fields, self.file, self.feed.taken[0][0])

    def _check_accounting(self) -> None:
        counted = self.header_lines + self.blank_lines + self.record_lines
        if counted != self.lines or self.feed.pending:
            raise RuntimeError(
                f"{self.file}: line accounting broken: {self.lines} lines read but header "
                f"{self.header_lines} + blank {self.blank_lines} + records {self.record_lines}"
            )
