"""Which tabular files a command reads: globs expanded, format chosen by suffix, checked early.

Usage: `files = resolve_files(["logs/2024-*.csv", "extra.jsonl"])`; `table_file("dev.tsv")`.

Every problem with a path (missing, a directory, unknown suffix) is a `DataError` naming the
file, raised before the first row is read, so a long run never dies at file 37 of 40 for a
reason that was visible at the start.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kefu.errors import DataError

# Suffix -> format. `.json` is read as JSON Lines (one object per line), or, when its first
# character opens an array, as that array's elements (`jsonarray.py`). Excel: the first worksheet.
FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}
# The text formats may also come compressed (logs.csv.gz, logs.jsonl.zst), read as a stream;
# Parquet and xlsx are compressed inside already.
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
TEXT_FORMATS = ("csv", "tsv", "jsonl")  # read line by line through the decoding policy
DELIMITERS = {"csv": ",", "tsv": "\t"}


@dataclass(frozen=True)
class TableFile:
    path: Path
    format: str  # a value of FORMATS
    size: int
    mtime_ns: int
    suffix: str = ""  # the format's suffix, e.g. ".json" for logs.json.gz
    compression: str | None = None  # a value of COMPRESSIONS
    # the path as the user gave it (a glob's match: relative to the same base as the pattern);
    # rejects and messages name the file so, where `path` may be absolute
    display_name: str = ""

    def fingerprint(self) -> dict[str, object]:
        """What must not change between a scoring run and its `--resume` (the absolute path:
        the same file, whichever way it is named)."""
        return {"path": str(self.path), "size": self.size, "mtime_ns": self.mtime_ns}


def format_of(path: Path, name: str) -> tuple[str, str, str | None]:
    """(format, format suffix, compression) of an input path, by its suffixes; errors name the
    file `name`, as the user typed it."""
    suffix = path.suffix.lower()
    compression = COMPRESSIONS.get(suffix)
    if compression is not None:
        suffix = Path(path.stem).suffix.lower()
    if suffix not in FORMATS:
        shown = "".join(path.suffixes[-2:]) if compression else path.suffix
        fix = "rename the file or convert it"
        if suffix == ".txt" and not compression:  # Excel's "Unicode Text": UTF-16, tab-separated
            fix += f' (Excel\'s "Unicode Text" .txt: {to_utf8_command("utf-16", name, ".tsv")})'
        raise DataError(
            f"unknown input file type {shown.lower() or '(no suffix)'!r}; expected one of "
            f"{', '.join(sorted(FORMATS))}, text formats optionally compressed "
            f"({', '.join(COMPRESSIONS)}); {fix}",
            file=name,
        )
    fmt = FORMATS[suffix]
    if compression is not None and fmt not in TEXT_FORMATS:
        raise DataError(
            f"a compressed {fmt} file cannot be read; {fmt} is compressed inside already: "
            "decompress it",
            file=name,
        )
    return fmt, suffix, compression


def to_utf8_command(encoding: str, name: str, suffix: str | None = None) -> str:
    """The iconv command that writes a UTF-8 copy of `name` beside it (`suffix`: its new one)."""
    path = Path(name)
    copy = path.with_name(f"{path.stem}-utf8{suffix or path.suffix}")
    return f"iconv -f {encoding} -t utf-8 {shlex.quote(name)} > {shlex.quote(str(copy))}"


def table_file(path: str | Path, display: str | None = None) -> TableFile:
    """A file that exists and has a known suffix; `display` names it in errors and rejects
    (default: the path as given)."""
    path = Path(path)
    shown = str(Path(display)) if display else str(path)
    if not path.exists():
        raise DataError("input file does not exist", file=shown)
    if path.is_dir():
        raise DataError(
            "input is a directory; pass files or a glob such as 'dir/*.csv'", file=shown
        )
    fmt, suffix, compression = format_of(path, shown)
    stat = path.stat()
    return TableFile(path, fmt, stat.st_size, stat.st_mtime_ns, suffix, compression, shown)


def resolve_files(patterns: list[str]) -> list[TableFile]:
    """Expand globs (sorted), drop repeats, keep the order given; paths come back absolute,
    display names as typed (`logs/*.csv` -> `logs/a.csv`)."""
    if not patterns:
        raise DataError(
            "no input files given; pass one or more CSV, TSV, JSONL, Parquet or xlsx paths"
        )
    seen: dict[Path, TableFile] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise DataError(f"the pattern {pattern!r} matches no file", file=pattern)
        for match in matches:
            path = Path(match).resolve()
            if path not in seen:
                seen[path] = table_file(path, display=match)
    return list(seen.values())


def check_unchanged(file: TableFile, now: os.stat_result) -> None:
    """Refuse a file that changed since it was resolved: what a run checked, counted and
    fingerprinted for `--resume` must be what it reads (a log still being written, a file
    truncated or replaced mid-run)."""
    if (now.st_size, now.st_mtime_ns) != (file.size, file.mtime_ns):
        raise DataError(
            f"the file changed while kefu was using it ({file.size:,} bytes when first opened, "
            f"{now.st_size:,} now); rerun once nothing writes to it, or on a copy",
            file=file.display_name,
        )


@contextmanager
def open_bytes(file: TableFile) -> Iterator[BinaryIO]:
    """The file's (decompressed) bytes as a binary stream that iterates by line."""
    with file.path.open("rb") as raw:
        check_unchanged(file, os.fstat(raw.fileno()))
        if file.compression is None:
            yield raw
        elif file.compression == "gzip":
            try:
                with gzip.GzipFile(fileobj=raw) as stream:
                    yield stream  # type: ignore[misc]
            except (OSError, EOFError) as exc:  # BadGzipFile, truncated stream
                raise DataError(
                    f"cannot decompress (gzip): {exc}", file=file.display_name
                ) from None
        else:
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            try:
                with io.BufferedReader(reader) as stream:  # type: ignore[arg-type]
                    yield stream
            except zstandard.ZstdError as exc:
                raise DataError(
                    f"cannot decompress (zstd): {exc}", file=file.display_name
                ) from None
