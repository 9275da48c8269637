"""Read any tabular file as blocks of records: the one reader behind score, train and report.

Usage: `columns = read_columns(file)`; `for block in read_blocks(file, 2048): ...`;
`for record in read_records(file): ...`; each takes `options` (`ReadOptions`: encoding).

A block holds up to `size` records, cut the same way on every read of the same file with the
same options (what lets `kefu score --resume` skip committed chunks by count). Every file gives
at least one block, and the blocks of a file account for every physical line of it (header,
blank lines and records; Parquet: rows; xlsx: sheet rows; a JSON array: elements), so a run
can prove that nothing was skipped.
Memory: one block (plus one Parquet record batch, or one JSON array element) at a time.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kefu.errors import DataError
from kefu.tabular.csvrows import CsvRows
from kefu.tabular.decoding import (
    SNIFF_BYTES,
    decoded_pieces,
    file_encoding,
    iter_lines,
    line_end,
)
from kefu.tabular.files import DELIMITERS, TableFile, check_unchanged, open_bytes
from kefu.tabular.jsonarray import JsonArrayRows, starts_with_array
from kefu.tabular.options import DEFAULT_OPTIONS, ReadOptions
from kefu.tabular.textrows import ROW, JsonRows, Record, json_columns
from kefu.tabular.values import records_table
from kefu.tabular.xlsx import XlsxRows, sheet_rows


@dataclass
class Block:
    file: TableFile
    records: list[Record]  # one per row, in file order
    table: pa.Table | None  # Parquet: the rows as read (records then hold positions only)
    lines: int  # physical lines (Parquet: rows; xlsx: sheet rows) accounted here
    encoding: str | None = None  # what a text format was decoded with

    def __len__(self) -> int:
        return len(self.records)

    @property
    def record_lines(self) -> int:
        return sum(record.end_line - record.line + 1 for record in self.records)

    @property
    def multiline_records(self) -> int:
        return sum(record.end_line > record.line for record in self.records)

    def column(self, name: str | None) -> list[Any]:
        """The raw values of one column, None where a record lacks it or cannot be read."""
        if name is None:
            return [None] * len(self.records)
        if self.table is not None:
            if name not in self.table.column_names:
                return [None] * self.table.num_rows
            return self.table.column(name).to_pylist()
        return [r.values.get(name) if r.values is not None else None for r in self.records]

    def take(self, keep: list[int]) -> pa.Table:
        """An Arrow table of the records at `keep` (CSV, TSV, xlsx cells are text; JSONL typed)."""
        if self.table is not None:
            if len(keep) == self.table.num_rows:
                return self.table
            return self.table.take(pa.array(keep, pa.int64()))
        rows = [self.records[i].values or {} for i in keep]
        return records_table(rows, typed=self.file.format == "jsonl")


def read_columns(file: TableFile, options: ReadOptions = DEFAULT_OPTIONS) -> list[str] | None:
    """The file's column names; None for a file with no header (or no JSON object)."""
    try:
        if file.format == "parquet":
            return list(_parquet(file).schema_arrow.names)
        if file.format == "xlsx":
            rows = _xlsx_rows(file)
            rows.close()
            return rows.header
        encoding = file_encoding(file, options.encoding)
        if _is_json_array(file, encoding):
            return json_columns(_array_rows(file, encoding, options))
        lines = iter_lines(file, encoding)
        if file.format == "jsonl":
            return json_columns(JsonRows(lines, file.display_name))
        return _csv_rows(file, lines, encoding, options).header
    except (OSError, UnicodeError, csv.Error, pa.ArrowException) as exc:
        raise DataError(f"cannot read the file: {exc}", file=file.display_name) from None


def read_blocks(
    file: TableFile,
    size: int,
    columns: list[str] | None = None,
    options: ReadOptions = DEFAULT_OPTIONS,
) -> Iterator[Block]:
    """Blocks of `size` records (the last one shorter); `columns` narrows Parquet reads."""
    try:
        if file.format == "parquet":
            yield from _parquet_blocks(file, size, columns)
        else:
            yield from _row_blocks(file, size, options)
    except DataError:
        raise
    except (OSError, csv.Error, pa.ArrowException) as exc:
        raise DataError(f"reading stopped: {exc}", file=file.display_name) from None


def read_records(file: TableFile, options: ReadOptions = DEFAULT_OPTIONS) -> Iterator[Record]:
    """Every record with its values (Parquet rows too), for readers that want dicts."""
    for block in read_blocks(file, 10_000, options=options):
        if block.table is None:
            yield from block.records
            continue
        for record, values in zip(block.records, block.table.to_pylist(), strict=True):
            yield Record(record.line, record.end_line, values, unit=record.unit)


def estimate_records(file: TableFile) -> int:
    """Rows to expect, for progress bars and limits: an upper bound, exact for Parquet.

    Lines for the text formats; for a JSON array, its `{` (one opens each object element; one
    inside a value or a nested object counts too): close enough that the xlsx limit does not
    refuse an array it could write. Elements that are not objects become rejects, not rows."""
    if file.format == "parquet":
        return _parquet(file).metadata.num_rows
    if file.format == "xlsx":
        return max(0, sheet_rows(file.path) - 1)
    array = _is_json_array(file, "utf-8")  # "[" reads alike in every encoding the reader takes
    lines, braces, end, last = 0, 0, b"", b""
    with open_bytes(file) as handle:
        while block := handle.read(1 << 24):
            end = end or line_end(block[:SNIFF_BYTES])  # as the lines are split
            lines += block.count(end)
            braces += block.count(b"{") if array else 0
            last = block[-1:]
    lines += last not in (end, b"")
    if array:
        return braces
    return max(0, lines - 1) if file.format in DELIMITERS else lines


def _row_blocks(file: TableFile, size: int, options: ReadOptions) -> Iterator[Block]:
    name = file.display_name
    encoding = None
    rows: CsvRows | JsonRows | JsonArrayRows | XlsxRows
    if file.format == "xlsx":
        rows = _xlsx_rows(file)
    else:
        encoding = file_encoding(file, options.encoding)
        lines = iter_lines(file, encoding)
        if _is_json_array(file, encoding):
            rows = _array_rows(file, encoding, options)
        elif file.format == "jsonl":
            rows = JsonRows(lines, name)
        else:
            rows = _csv_rows(file, lines, encoding, options)
    batch: list[Record] = []
    accounted = 0  # lines given to earlier blocks
    try:
        for record in rows:
            if len(batch) == size:  # a full block waits for the next record: trailing lines are its
                yield Block(file, batch, None, batch[-1].end_line - accounted, encoding)
                accounted, batch = batch[-1].end_line, []
            batch.append(record)
    finally:
        if isinstance(rows, XlsxRows):
            rows.close()
    yield Block(file, batch, None, rows.lines - accounted, encoding)


def _csv_rows(
    file: TableFile, lines: Iterator[tuple[int, str]], encoding: str, options: ReadOptions
) -> CsvRows:
    return CsvRows(
        lines,
        DELIMITERS[file.format],
        file.display_name,
        encoding,
        max_lines=options.max_record_lines,
        max_chars=options.max_record_chars,
        encoding_fix=options.encoding_fix,
    )


def _is_json_array(file: TableFile, encoding: str) -> bool:
    """A `.json` file whose first character opens an array (other JSON files: JSON Lines)."""
    return file.suffix == ".json" and starts_with_array(decoded_pieces(file, encoding))


def _array_rows(file: TableFile, encoding: str, options: ReadOptions) -> JsonArrayRows:
    return JsonArrayRows(
        decoded_pieces(file, encoding), file.display_name, options.max_record_chars
    )


def _xlsx_rows(file: TableFile) -> XlsxRows:
    check_unchanged(file, file.path.stat())
    return XlsxRows(file.path, file.display_name)


def _parquet(file: TableFile) -> pq.ParquetFile:
    try:
        check_unchanged(file, file.path.stat())
        return pq.ParquetFile(file.path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", file=file.display_name) from None


def _parquet_blocks(file: TableFile, size: int, columns: list[str] | None) -> Iterator[Block]:
    """Tables of exactly `size` rows (the last one shorter), whatever the row groups."""
    parquet = _parquet(file)
    if columns is not None:
        columns = [name for name in columns if name in parquet.schema_arrow.names]
    pending: list[pa.RecordBatch] = []
    pending_rows, next_row = 0, 1
    for batch in parquet.iter_batches(batch_size=size, columns=columns):
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= size:
            table = pa.Table.from_batches(pending)
            yield _parquet_block(file, next_row, table.slice(0, size))
            rest = table.slice(size)
            pending, pending_rows = rest.to_batches(), rest.num_rows
            next_row += size
    if pending_rows or next_row == 1:  # the rest, or one empty block for a file without rows
        empty = parquet.schema_arrow.empty_table()
        table = (
            pa.Table.from_batches(pending)
            if pending
            else empty.select(columns or empty.column_names)
        )
        yield _parquet_block(file, next_row, table)


def _parquet_block(file: TableFile, first_row: int, table: pa.Table) -> Block:
    records = [Record(first_row + i, first_row + i, None, unit=ROW) for i in range(table.num_rows)]
    return Block(file, records, table, table.num_rows)
