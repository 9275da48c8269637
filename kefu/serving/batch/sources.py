"""What a scoring run reads and writes, checked before the first row is scored.

Inputs are resolved by `kefu.tabular` (globs, suffixes); here each one is opened to check its
columns, and the output path is checked. Every problem is raised as a `DataError` naming the
file before scoring starts, so a long run never dies at file 37 of 40 for a reason that was
visible at the start.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kefu.errors import ConfigError, DataError
from kefu.tabular import (
    DEFAULT_OPTIONS,
    ReadOptions,
    TableFile,
    estimate_records,
    read_columns,
    rejects_file,
)
from kefu.tabular.output import check_writable
from kefu.tabular.textrows import COLUMN_SCAN_LINES
from kefu.tabular.xlsx import MAX_ROWS as XLSX_MAX_ROWS
from kefu.tabular.xlsx import worksheet_names

OUTPUT_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
}
TEXT_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_binary,
    pa.types.is_large_binary,
    pa.types.is_null,
)
INTERNAL_PREFIX = "_kefu_"  # column names the engines use in flight; never allowed in inputs


def check_input(
    source: TableFile, text_col: str, id_col: str | None, options: ReadOptions = DEFAULT_OPTIONS
) -> list[str] | None:
    """Open the file and look at its columns: readable, has the text (and id) column.

    Returns the column names, or None for an empty file (no rows to check).
    """
    columns = read_columns(source, options)
    if columns is None and source.format == "xlsx":
        first, *others = worksheet_names(source.path)
        if others:  # the data is on a later sheet; "no data rows" would say the file has none
            raise DataError(
                f"worksheet {first!r} is empty, and only the first worksheet is read; move the one "
                f"with the messages first (the others: {', '.join(map(repr, others))})",
                file=source.display_name,
            )
    if columns is None:
        return None
    internal = [name for name in columns if name.startswith(INTERNAL_PREFIX)]
    if internal:
        raise DataError(
            f"column names starting with {INTERNAL_PREFIX!r} are reserved, found {internal}",
            file=source.display_name,
        )
    for role, name in (("text", text_col), ("id", id_col)):
        if name is not None and name not in columns:
            raise DataError(
                f"{role} column {name!r} is missing; {found_columns(source, columns)}; "
                f"name it with --{role}-col",
                file=source.display_name,
                column=name,
            )
    if source.format == "parquet":
        field = pq.read_schema(source.path).field(text_col)
        # pandas writes a `category` column as a dictionary: its values are what is read
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if not any(check(kind) for check in TEXT_TYPES):
            raise DataError(
                f"text column {text_col!r} has type {field.type}; expected a string column",
                file=source.display_name,
                column=text_col,
            )
    return columns


def found_columns(source: TableFile, columns: list[str]) -> str:
    """The columns a missing-column error lists: all of them up to 30, and where they came from
    when that is not obvious (a JSONL file has no header)."""
    listed = f"found columns {columns[:30]}" + (
        f" and {len(columns) - 30} more" if len(columns) > 30 else ""
    )
    if source.format == "jsonl":
        listed += f" (the keys of its first {COLUMN_SCAN_LINES:,} lines)"
    if source.format == "xlsx":  # a title row above the header, the data on another sheet
        first, *others = worksheet_names(source.path)
        listed += (
            f" (the first non-empty row of worksheet {first!r} is read as the header: delete any "
            "title row above the real one"
        )
        if others:
            listed += f"; worksheets after the first are not read: {', '.join(map(repr, others))}"
        listed += ")"
    return listed


def output_paths(output: Path) -> tuple[Path, Path]:
    """(rejects file, staging directory) of an output path; both sit next to it."""
    return rejects_file(output), Path(f"{output}.partial")


def output_format(output: Path, forced: str | None = None) -> str:
    """The output format: `--format` when given, else by the suffix of `-o`.

    An unknown suffix is a bad option (exit 2, as a bad `--format`), not bad data.
    """
    if forced is not None:
        return forced
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(
            f"-o {output}: unknown output file type {suffix or '(no suffix)'!r}; expected one "
            f"of {', '.join(sorted(OUTPUT_SUFFIXES))}, or name the format with --format"
        )
    return OUTPUT_SUFFIXES[suffix]


def check_output(
    output: Path, inputs: list[TableFile], forced: str | None = None, excel_csv: bool = False
) -> str:
    fmt = output_format(output, forced)
    if excel_csv and fmt != "csv":
        raise ConfigError(f"--excel-csv applies to CSV output; the output format is {fmt}")
    if fmt == "xlsx":
        rows = sum(estimate_records(source) for source in inputs)
        if rows >= XLSX_MAX_ROWS:
            raise DataError(
                f"the inputs hold up to {rows:,} rows; an xlsx worksheet holds at most "
                f"{XLSX_MAX_ROWS - 1:,}: write .parquet or .csv (with --excel-csv for Excel)",
                file=str(output),
            )
    if output.resolve() in {source.path for source in inputs}:
        raise DataError(
            "the output would overwrite one of the inputs (a glob of the inputs matches it when "
            "an earlier run wrote it beside them); write it where no input pattern matches",
            file=str(output),
        )
    check_writable(output, "scored.parquet")
    return fmt
