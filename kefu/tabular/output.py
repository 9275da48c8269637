"""Writing a file whole or not at all: a temp name renamed into place, removed on failure.

Usage: `with replacing(Path("out.parquet"), hint="rerun with --resume") as tmp: write(tmp)`.

A full disk (or a lost permission) surfaces deep inside pyarrow or openpyxl as a bare OSError;
here it becomes one `OutputError` line naming the file and what to do, and the half-written
temp file is gone, so nothing partial is left to be mistaken for a result. `check_writable`
refuses, before a command reads anything, an `-o` it could not write.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from kefu.errors import DataError, OutputError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def replacing(path: Path, hint: str = "") -> Iterator[Path]:
    """Yield `path` + ".tmp" to write; rename it over `path` when the block succeeds."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink()  # a symlink is removed, not followed
        if isinstance(exc, OSError):
            raise OutputError(write_error(path, exc, hint)) from None
        raise


def write_error(path: Path, exc: OSError, hint: str = "") -> str:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    advice = "free some space" if exc.errno in NO_SPACE else "fix the cause"
    return f"cannot write {path}: {reason}; {advice}" + (f", then {hint}" if hint else "")


def check_writable(output: Path, example_name: str) -> None:
    """Refuse, before any work, an `-o` that is a directory or whose directory cannot be made
    or takes no file: found only when the result is written at the end, it would cost the
    whole run. A missing directory is created; nothing else is left behind."""
    if output.is_dir():
        raise DataError(
            f"the output is a directory; name a file in it, e.g. -o {output / example_name}",
            file=str(output),
        )
    parent = output.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(  # "File exists": a file has the directory's name
            f"cannot create the output directory {parent} ({exc.strerror or exc})",
            file=str(output),
        ) from None
    try:  # a real file: os.access says yes to root where writes still fail (/proc, root squash)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise DataError(
            f"the output directory {parent} is not writable ({exc.strerror or exc})",
            file=str(output),
        ) from None
