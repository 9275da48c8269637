"""Excel workbooks (.xlsx) in and out, streamed with openpyxl's read-only and write-only modes.

In: the first worksheet; its first non-empty row is the header. Every cell is read as text,
like a CSV cell: Excel types cells one by one and guesses (a message "666" becomes a number,
an order id 1.2E+13), so a column's type cannot be trusted. Integers keep their digits, dates
read as ISO text ("2024-03-01 09:00:00"), booleans as "true"/"false", empty cells as null.
A row is numbered by its sheet row, which is what Excel shows; empty rows are layout.

Out: one sheet, header then rows; numbers and booleans stay typed, lists are joined with ";"
(as in CSV), a text starting with "=" is text, not a formula, control characters that the
format forbids become U+FFFD and a cell keeps at most 32,767 characters (Excel's limit).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from kefu.errors import DataError
from kefu.tabular.textrows import ROW, Record, header_names

MAX_ROWS = 1_048_576  # rows per worksheet, header included
MAX_CELL_CHARS = 32_767


class XlsxRows:
    """Rows of the first worksheet: `header` on construction, then iterate for `Record`s."""

    def __init__(self, path: Path, file: str):
        import openpyxl

        self.file = file
        try:
            self.workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException, ...
            raise DataError(f"not a readable xlsx workbook: {exc}", file=file) from None
        sheet = self.workbook.worksheets[0]
        cells = sheet.iter_rows(min_row=1, min_col=1, values_only=True)
        self.rows = enumerate(self._undamaged(cells), start=1)
        self.lines = 0  # sheet rows read so far
        self.header = self._read_header()

    def _undamaged(self, rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        """The sheet's rows, or one line naming the file where its damaged part begins.

        openpyxl inflates and parses the sheet as it goes, so a workbook damaged past its start
        (cut short, bytes changed) opens fine and fails mid-read with whatever zlib, zipfile or
        the XML parser raise."""
        while True:
            try:
                cells = next(rows)
            except StopIteration:
                return
            except Exception as exc:  # zlib.error, BadZipFile, EOFError, ParseError, ...
                raise DataError(
                    f"the workbook is damaged after sheet row {self.lines}: "
                    f"{type(exc).__name__}: {exc}",
                    file=self.file,
                ) from None
            yield cells

    def __iter__(self) -> Iterator[Record]:
        if self.header is None:
            return
        width = len(self.header)
        for number, cells in self.rows:
            self.lines = number
            values = [cell_text(cell) for cell in cells]
            while values and values[-1] in (None, ""):
                values.pop()  # the sheet's used range may be wider than this row
            if not values:
                continue
            if len(values) > width:
                detail = f"expected {width} fields, found {len(values)}"
                # what the row still tells (its id, mostly), by position, as for CSV
                kept = dict(zip(self.header, values, strict=False))
                yield Record(number, number, kept, ("malformed_row", detail), unit=ROW)
                continue
            values += [None] * (width - len(values))
            yield Record(number, number, dict(zip(self.header, values, strict=True)), unit=ROW)

    def close(self) -> None:
        self.workbook.close()

    def _read_header(self) -> list[str] | None:
        for number, cells in self.rows:
            self.lines = number
            names = [cell_text(cell) for cell in cells]
            while names and names[-1] in (None, ""):
                names.pop()
            if not names:
                continue
            return header_names(names, self.file, number, unit=ROW)
        return None


def sheet_rows(path: Path) -> int:
    """Rows of the first worksheet, from its dimension tag when it has one (else counted)."""
    rows = XlsxRows(path, str(path))
    try:
        sheet = rows.workbook.worksheets[0]
        return sheet.max_row or (rows.lines + sum(1 for _ in rows.rows))
    finally:
        rows.close()


def worksheet_names(path: Path) -> list[str]:
    """The workbook's worksheets in order (the reader takes the first), for messages."""
    rows = XlsxRows(path, str(path))
    try:
        return list(rows.workbook.sheetnames)
    finally:
        rows.close()


def cell_text(value: Any) -> str | None:
    """A cell value as the text a CSV export would hold."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def write_xlsx(header: list[str], rows: Iterable[list[Any]], path: Path, sheet: str) -> int:
    """Write one worksheet (write-only mode: memory stays flat); returns data rows written."""
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)
    worksheet.append(_cells(worksheet, header))
    count = 0
    for row in rows:
        count += 1
        if count >= MAX_ROWS:
            worksheet.close()  # else its open stream prints a traceback when collected
            raise DataError(
                f"an xlsx worksheet holds at most {MAX_ROWS - 1:,} rows; write .parquet or .csv",
                file=str(path),
            )
        worksheet.append(_cells(worksheet, row))
    workbook.save(path)
    return count


def _cells(worksheet: Any, values: list[Any]) -> list[Any]:
    """One row's cells. A text that starts with "=" is written as text: openpyxl would write
    it as a formula, so a customer's "=。=" became a broken formula Excel repairs away and
    "=HYPERLINK(...)" a live link."""
    from openpyxl.cell import WriteOnlyCell

    cells = [xlsx_cell(value) for value in values]
    for i, cell in enumerate(cells):
        if isinstance(cell, str) and cell.startswith("="):
            cells[i] = WriteOnlyCell(worksheet, value=cell)
            cells[i].data_type = "s"
    return cells


def xlsx_cell(value: Any) -> Any:
    """A value openpyxl can write and Excel can open."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.isoformat(sep=" ")  # Excel has no time zones
    elif isinstance(value, date | time):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = ";".join(value)
    elif not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)[:MAX_CELL_CHARS]
