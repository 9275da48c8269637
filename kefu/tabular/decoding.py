"""The decoding policy of every text format (CSV, TSV, JSONL): bytes in, numbered lines out.

Files are read as bytes and split on b"\\n" before decoding, so a line number is always a
physical line of the file. A UTF-8 byte-order mark is dropped. Bytes that are not valid UTF-8
do not stop the file: they are kept as lone surrogates (`surrogateescape`) and each column
decides what to do with them (see `values.py`): the message text is rejected with the line and
the encoding, any other value is kept with U+FFFD in their place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from kefu.tabular.files import TableFile, open_bytes

BOM = "\ufeff"


def file_encoding(file: TableFile) -> str:
    return "utf-8"


def decoded_lines(handle: BinaryIO, encoding: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, text with its line ending) of every physical line."""
    for number, raw in enumerate(handle, start=1):
        text = raw.decode(encoding, errors="surrogateescape")
        if number == 1:
            text = text.removeprefix(BOM)
        yield number, text


def iter_lines(file: TableFile, encoding: str) -> Iterator[tuple[int, str]]:
    with open_bytes(file) as handle:
        yield from decoded_lines(handle, encoding)
