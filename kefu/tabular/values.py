"""Cell values: is this a usable message text, and how other values travel on.

The decoding policy keeps undecodable bytes as lone surrogates (Python's `surrogateescape`)
instead of failing the whole line, so each column can decide: the message text is rejected
(`text_problem`), any other value is kept with U+FFFD in place of the bad bytes (`repair`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pyarrow as pa

from kefu.serving.normalize import has_content
from kefu.tabular.decoding import encoding_hint

SURROGATE = re.compile("[\ud800-\udfff]")  # undecodable bytes, kept by errors="surrogateescape"
JSON_KINDS = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}


def text_problem(
    value: Any, encoding: str = "utf-8", max_chars: int | None = None
) -> tuple[str, str] | None:
    """(reason, detail) when `value` cannot be used as a message text, else None.

    `encoding` is what the file was decoded with; it is named when bytes did not fit it.
    `max_chars` is the limit the server applies too (kefu/serving/limits.py): longer texts are
    rejected in both places, never silently truncated.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing_text", "text is null or absent"
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            return (
                "undecodable_text",
                f"invalid UTF-8 byte 0x{value[exc.start]:02x} at byte {exc.start}",
            )
    if not isinstance(value, str):
        kind = JSON_KINDS.get(type(value), f"a {type(value).__name__}")
        return "not_text", f"text is {kind}, expected a string"
    bad = SURROGATE.search(value)
    if bad:
        return "undecodable_text", undecodable_detail(bad.group(), bad.start(), encoding)
    if max_chars is not None and len(value) > max_chars:  # first, as the server does
        return "text_too_long", f"text has {len(value)} characters; the limit is {max_chars}"
    if not has_content(value):  # what the model would read: nothing
        return (
            "empty_text",
            "text is empty or holds only white space, markup or invisible characters",
        )
    return None


def undecodable_detail(char: str, position: int, encoding: str, fix: str | None = None) -> str:
    byte = ord(char) - 0xDC00
    if 0x80 <= byte <= 0xFF:
        return (
            f"invalid {encoding} byte 0x{byte:02x} at character {position} "
            f"({fix or encoding_hint(encoding)})"
        )
    return f"lone surrogate at character {position}"


def as_text(value: Any) -> Any:
    """A usable message text as `str` (a Parquet binary column holds UTF-8 bytes)."""
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else value


def repair(value: Any) -> Any:
    """A pass-through value with undecodable bytes keeps the rest, with U+FFFD for the bytes."""
    if isinstance(value, str) and SURROGATE.search(value):
        return SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: repair(item) for key, item in value.items()}
    if isinstance(value, list):
        return [repair(item) for item in value]
    return value


def json_safe(value: Any) -> Any:
    """An id as it can go into a JSON rejects file."""
    if isinstance(value, str | int | bool) or value is None:
        return repair(value)
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return str(value)


def records_table(records: list[dict[str, Any]], typed: bool) -> pa.Table:
    """Arrow table of row records, columns in order of first appearance.

    `typed=False` (CSV, TSV: every cell is text) gives string columns; `typed=True` (JSONL)
    lets Arrow infer each column's type, with JSON text where the values mix types.
    """
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {}
    for name in names:
        values = [repair(record.get(name)) for record in records]
        columns[name] = _json_column(values) if typed else pa.array(values, pa.string())
    return pa.table(columns) if columns else pa.table({})


def _json_column(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array(
            [
                None
                if v is None
                else v
                if isinstance(v, str)
                else json.dumps(v, ensure_ascii=False)
                for v in values
            ],
            pa.string(),
        )
