"""Which files a run reads and writes: globs expanded, formats chosen by suffix, checked early.

Every problem with an input (missing, unknown suffix, unreadable, no text column) is raised as
a `DataError` naming the file before the first row is scored, so a long run never dies at
file 37 of 40 for a reason that was visible at the start.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kefu.errors import DataError

# Suffix -> format. Inputs and outputs share the table; `.json` is not accepted because a
# single JSON array cannot be streamed row by row.
FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
TEXT_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_binary,
    pa.types.is_large_binary,
    pa.types.is_null,
)
INTERNAL_PREFIX = "_kefu_"  # column names the engines use in flight; never allowed in inputs


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str  # "csv" | "jsonl" | "parquet"
    size: int
    mtime_ns: int

    def fingerprint(self) -> dict[str, object]:
        """What must not change between a run and its `--resume`."""
        return {"path": str(self.path), "size": self.size, "mtime_ns": self.mtime_ns}


def format_of(path: Path, role: str = "input") -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"unknown {role} file type {suffix or '(no suffix)'!r}; expected one of "
            f"{', '.join(sorted(FORMATS))}; rename the file or convert it",
            file=str(path),
        )
    return FORMATS[suffix]


def resolve_inputs(patterns: list[str]) -> list[InputFile]:
    """Expand globs (sorted), drop repeats, keep the order given; each file must exist."""
    if not patterns:
        raise DataError("no input files given; pass one or more CSV, JSONL or Parquet paths")
    seen: dict[Path, InputFile] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise DataError(f"the pattern {pattern!r} matches no file", file=pattern)
        for match in matches:
            path = Path(match).resolve()
            if path in seen:
                continue
            if not path.exists():
                raise DataError("input file does not exist", file=match)
            if path.is_dir():
                raise DataError(
                    "input is a directory; pass files or a glob such as 'dir/*.csv'", file=match
                )
            stat = path.stat()
            seen[path] = InputFile(path, format_of(path), stat.st_size, stat.st_mtime_ns)
    return list(seen.values())


def check_input(source: InputFile, text_col: str, id_col: str | None) -> list[str] | None:
    """Open the file and look at its columns: readable, has the text (and id) column.

    Returns the column names, or None for an empty CSV or JSONL file (no rows to check).
    """
    try:
        columns = _columns(source)
    except DataError:
        raise
    except (OSError, UnicodeError, csv.Error, pa.ArrowException) as exc:
        raise DataError(f"cannot read the file: {exc}", file=str(source.path)) from None
    if columns is None:
        return None
    internal = [name for name in columns if name.startswith(INTERNAL_PREFIX)]
    if internal:
        raise DataError(
            f"column names starting with {INTERNAL_PREFIX!r} are reserved, found {internal}",
            file=str(source.path),
        )
    for role, name in (("text", text_col), ("id", id_col)):
        if name is not None and name not in columns:
            raise DataError(
                f"{role} column {name!r} is missing; found columns {list(columns)[:20]}; "
                f"name it with --{role}-col",
                file=str(source.path),
                column=name,
            )
    if source.format == "parquet":
        field = pq.read_schema(source.path).field(text_col)
        if not any(check(field.type) for check in TEXT_TYPES):
            raise DataError(
                f"text column {text_col!r} has type {field.type}; expected a string column",
                file=str(source.path),
                column=text_col,
            )
    return columns


def _columns(source: InputFile) -> list[str] | None:
    if source.format == "parquet":
        try:
            return list(pq.read_schema(source.path).names)
        except pa.ArrowException as exc:
            raise DataError(f"not a readable Parquet file: {exc}", file=str(source.path)) from None
    if source.format == "csv":
        with source.path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            header = next(csv.reader(handle), None)
        if header is None:
            return None
        if len(set(header)) != len(header):
            raise DataError(
                f"the header repeats column names: {header}", file=str(source.path), line=1
            )
        return header
    with source.path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8-sig", errors="surrogateescape"))
            except json.JSONDecodeError:
                continue  # a bad line becomes a reject later; the next line shows the columns
            if isinstance(record, dict):
                return list(record)
            if number > 1000:
                break
    return None


def output_paths(output: Path) -> tuple[Path, Path]:
    """(rejects file, staging directory) of an output path; both sit next to it."""
    return Path(f"{output}.rejects.jsonl"), Path(f"{output}.partial")


def check_output(output: Path, inputs: list[InputFile]) -> str:
    fmt = format_of(output, role="output")
    if output.resolve() in {source.path for source in inputs}:
        raise DataError(
            "the output would overwrite one of the inputs; choose another -o path", file=str(output)
        )
    parent = output.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the output directory {parent}: {exc}", file=str(output)
        ) from None
    if not os.access(parent, os.W_OK):
        raise DataError(f"the output directory {parent} is not writable", file=str(output))
    return fmt
