"""The decoding policy of every text format (CSV, TSV, JSONL): bytes in, numbered lines out.

Which encoding (`file_encoding`), in this order:
1. `--encoding NAME` when given (any ASCII-compatible codec: utf-8, gb18030, gbk, big5, ...);
2. a byte-order mark: UTF-8 (dropped); a UTF-16/32 mark is refused with the fix;
3. the first MiB: valid UTF-8 -> UTF-8; else "mostly UTF-8" (more well-formed multi-byte UTF-8
   characters than invalid bytes: a UTF-8 file with some damage) -> UTF-8; else GB18030, the
   superset of GBK and GB2312 that Excel on Chinese Windows writes as "CSV".
No guessing library: UTF-8's structure makes the check reliable (GBK text almost never forms
valid multi-byte UTF-8), and the rule is short enough to state in an error message.

Files are split into lines as bytes (b"\\n" and b"\\r" never occur inside a UTF-8 or GB18030
character), so a line number is always a physical line (a JSON array, which may be one line, is
read in pieces of PIECE_BYTES instead: `decoded_pieces`). Lines end at LF (LF and CRLF files),
or at CR in a file whose first MiB ends its lines with a bare CR (Excel for Mac's "CSV
(Macintosh)", old Mac exports), which would otherwise read as one line. Bytes that do not
decode do not stop the file: they are kept as lone surrogates (`surrogateescape`) and each
column decides (see `values.py`): the message text is rejected, naming the line and the
encoding; other values keep U+FFFD.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from kefu.errors import ConfigError, DataError
from kefu.tabular.files import TableFile, open_bytes, to_utf8_command

BOM = "\ufeff"
SNIFF_BYTES = 1 << 20
PIECE_BYTES = 1 << 20  # decoded_pieces: how much of the file is held at a time
FALLBACK = "gb18030"
# byte-order marks of the encodings refused, UTF-32's first: its little-endian mark starts
# with UTF-16's
WIDE_BOMS = {
    codecs.BOM_UTF32_LE: "utf-32",
    codecs.BOM_UTF32_BE: "utf-32",
    codecs.BOM_UTF16_LE: "utf-16",
    codecs.BOM_UTF16_BE: "utf-16",
}


def check_encoding(name: str) -> str:
    """The codec's canonical name; refuses unknown and non-ASCII-compatible encodings."""
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise ConfigError(
            f"unknown encoding {name!r}; use e.g. --encoding utf-8 or --encoding gb18030"
        ) from None
    if canonical == "utf-8-sig":
        return "utf-8"  # a UTF-8 byte-order mark is dropped anyway
    if '\n,\t"{}'.encode(canonical, errors="replace") != b'\n,\t"{}':
        raise ConfigError(
            f"--encoding {name} is not ASCII-compatible; convert the file to UTF-8 "
            f"(iconv -f {name} -t utf-8 in > out)"
        )
    return canonical


def file_encoding(file: TableFile, forced: str | None = None) -> str:
    """The encoding a text file is read with (see the module docstring for the order)."""
    if forced:
        return check_encoding(forced)
    with open_bytes(file) as handle:
        sample = handle.read(SNIFF_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8"
    for mark, wide in WIDE_BOMS.items():
        if sample.startswith(mark):
            raise DataError(
                f"the file is {wide.upper()} (it starts with its byte-order mark); save it as "
                f'"CSV UTF-8" or convert it: {to_utf8_command(wide, file.display_name)}',
                file=file.display_name,
            )
    return "utf-8" if _mostly_utf8(sample) else FALLBACK


def encoding_hint(encoding: str) -> str:
    other = FALLBACK if encoding == "utf-8" else "utf-8"
    return f"if the file is not {encoding}, pass --encoding {other}"


def line_end(sample: bytes) -> bytes:
    """The byte that ends a file's lines, judged on its first bytes: CR when more lines end with
    a bare CR than with LF (a CRLF line counts as LF), else LF."""
    bare_cr = sample.count(b"\r") - sample.count(b"\r\n")
    return b"\r" if bare_cr > sample.count(b"\n") else b"\n"


def physical_lines(handle: BinaryIO) -> Iterator[bytes]:
    """Every physical line of the stream with its ending (see `line_end`), read PIECE_BYTES at
    a time; a line is held whole however long it is, as iterating the file by line does."""
    first = handle.read(SNIFF_BYTES)
    end = line_end(first)
    pending: list[bytes] = []  # the start of a line that continues in the next piece
    piece = first
    while piece:
        *lines, rest = piece.split(end)
        if lines:
            lines[0] = b"".join([*pending, lines[0]])
            pending = []
            for line in lines:
                yield line + end
        pending.append(rest)
        piece = handle.read(PIECE_BYTES)
    if last := b"".join(pending):
        yield last


def decoded_lines(handle: BinaryIO, encoding: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, text with its line ending) of every physical line."""
    for number, raw in enumerate(physical_lines(handle), start=1):
        text = raw.decode(encoding, errors="surrogateescape")
        if number == 1:
            text = text.removeprefix(BOM)
        yield number, text


def iter_lines(file: TableFile, encoding: str) -> Iterator[tuple[int, str]]:
    with open_bytes(file) as handle:
        yield from decoded_lines(handle, encoding)


def decoded_pieces(file: TableFile, encoding: str) -> Iterator[str]:
    """The text in pieces of PIECE_BYTES bytes, cut anywhere (a character cut in two waits for
    the next piece): for a JSON array, which may be one line as long as the file."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="surrogateescape")
    first = True
    with open_bytes(file) as handle:
        while raw := handle.read(PIECE_BYTES):
            text = decoder.decode(raw)
            if first and text:
                text, first = text.removeprefix(BOM), False
            if text:
                yield text
        if rest := decoder.decode(b"", final=True):
            yield rest


def _mostly_utf8(sample: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)  # may end mid-char
        return True
    except UnicodeDecodeError:
        pass
    text = sample.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd")
    well_formed = sum(1 for char in text if char > "\x7f") - invalid
    return well_formed > invalid
