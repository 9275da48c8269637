"""A value quoted in an error message, cut short without breaking what the reader sees.

An error about a wrong argument shows the value it got, cut so that a long text or list does
not fill the terminal. Cutting the repr at a fixed number of code points (`{value!r:.40}`)
could stop inside an escape (`'\\u20`), between the halves of a surrogate pair, inside an
emoji sequence (a family joined by U+200D, a flag, a skin tone, a keycap) or between a letter
and its accent, and gave no sign that anything was left out. `preview` cuts only between
characters as a reader sees them (grapheme clusters, by the rules of UAX #29 that such text
meets: combining marks, joiners, variation selectors, emoji modifiers and tags, flag pairs,
CR LF, surrogate pairs) and between whole escapes, and ends a cut with "…". `cut` does the
same to a text shown as it is (a report's example message, a path echoed in an HTTP error).

Only the beginning of a repr is ever built: a 100 MB text or a list of a million items that an
error quotes costs a few hundred characters of repr, not a copy of itself. Texts (str, bytes,
bytearray) are sliced before their repr is taken, and lists, tuples, dicts and sets are spelt
item by item until enough is spelt; the result is the same as cutting the whole repr.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from typing import Any

PREVIEW_CHARS = 40  # longest preview, the ellipsis included
ELLIPSIS = "…"
ZWJ = "\u200d"

LONGEST_ESCAPE = len("\\U0001f600")
# One unit of a repr: a backslash escape as a whole, or one code point.
_UNIT = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)|.", re.DOTALL)
_ESCAPED = {"n": "\n", "r": "\r", "t": "\t"}
_EXTENDING = (
    (0xFE00, 0xFE0F),  # variation selectors (emoji or text presentation)
    (0x1F3FB, 0x1F3FF),  # emoji skin tones
    (0xE0020, 0xE007F),  # tags (subdivision flags)
    (0xE0100, 0xE01EF),  # variation selectors supplement
)


# How each container's repr opens and closes, and what it is when met again inside itself.
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    dict: ("{", "}"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}
_EMPTY = {list: "[]", tuple: "()", dict: "{}", set: "set()", frozenset: "frozenset()"}
_AGAIN = {list: "[...]", tuple: "(...)", dict: "{...}"}
_TEXTS = (str, bytes, bytearray)


def preview(value: object, limit: int = PREVIEW_CHARS) -> str:
    """`repr(value)` if it fits in `limit` characters, else its longest beginning made of whole
    characters and escapes that fits with "…" after it."""
    spelt, _ = _repr_head(value, limit + LONGEST_ESCAPE + 1, set())
    return cut(spelt, limit, escaped=True)


def _repr_head(value: object, room: int, spelling: set[int]) -> tuple[str, bool]:
    """(`repr(value)`, True), or (a beginning of it at least `room` characters long, False),
    built from as little of `value` as that takes. `spelling`: ids of the containers being
    spelt around this value, which repr shows as `[...]` when met again."""
    # exact types only: a subclass may spell itself otherwise
    if isinstance(value, str | bytes | bytearray) and type(value) in _TEXTS:
        if len(value) <= room:
            return repr(value), True
        return _text_head(value, room), False
    if isinstance(value, Collection) and type(value) in _BRACKETS:
        if id(value) in spelling:
            return _AGAIN[type(value)], True
        spelling.add(id(value))
        try:
            return _container_head(value, room, spelling)
        finally:
            spelling.discard(id(value))
    return repr(value), True


def _text_head(text: str | bytes | bytearray, room: int) -> str:
    """The first `room` or more characters of `repr(text)`, from its first `room` items.

    repr escapes each character (or byte) alone, but picks its quotes from the whole text:
    double quotes when it holds a ' and no ". The slice gets one more quote character, which
    makes repr pick the same quotes, and is spelt without it."""
    if isinstance(text, str):
        doubled = "'" in text and '"' not in text
        marker = "'" if doubled else '"'
        spelt = repr(text[:room] + marker)
    else:
        doubled = b"'" in text and b'"' not in text
        marker = "'" if doubled else '"'
        spelt = repr(text[:room] + marker.encode())
    return spelt[: spelt.rindex(marker)]


def _container_head(value: Collection[Any], room: int, spelling: set[int]) -> tuple[str, bool]:
    """`_repr_head` of a list, tuple, dict, set or frozenset: its items spelt one by one."""
    kind = type(value)
    if not value:
        return _EMPTY[kind], True
    opening, closing = _BRACKETS[kind]
    parts = [opening]
    length = len(opening)
    items = value.items() if isinstance(value, dict) else ((item,) for item in value)
    for index, item in enumerate(items):
        for position, part in enumerate(item):  # a dict's key and value, else the item
            parts.append(": " if position else ", " if index else "")
            length += len(parts[-1])
            text, whole = _repr_head(part, max(room - length, 1), spelling)
            parts.append(text)
            length += len(text)
            if not whole or length >= room:
                return "".join(parts), False
    if kind is tuple and len(value) == 1:
        parts.append(",")  # (x,): a tuple of one
    parts.append(closing)
    return "".join(parts), True


def cut(text: str, limit: int = PREVIEW_CHARS, *, escaped: bool = False) -> str:
    """`text` itself (not its repr) if it fits in `limit` characters, else its longest beginning
    made of whole characters that fits with "…" after it. `escaped`: `text` spells characters
    as backslash escapes (a repr, or `str.encode(..., "backslashreplace")`), kept whole too.

    Only the head of `text` is looked at, so a cut costs the same however long the text is.
    """
    if len(text) <= limit:
        return text
    head = text[: limit + LONGEST_ESCAPE]  # the units that fit, and the one after them whole
    units = _UNIT.findall(head) if escaped else list(head)
    chars = [_meant(unit) for unit in units] if escaped else units
    room = limit - len(ELLIPSIS)
    length = kept = 0
    for index, unit in enumerate(units):
        if length + len(unit) > room:
            break
        length += len(unit)
        if _boundary(chars, index + 1):
            kept = length
    return text[:kept] + ELLIPSIS


def _meant(unit: str) -> str:
    """The code point a repr unit stands for: `\\u200d` is a joiner, as U+200D itself."""
    if len(unit) == 1:
        return unit
    if unit[1] in "xuU" and len(unit) > 2:
        return chr(int(unit[2:], 16))
    return _ESCAPED.get(unit[1], unit[1])


def _boundary(chars: list[str], at: int) -> bool:
    """Whether a reader's character ends between `chars[at - 1]` and `chars[at]`."""
    if at >= len(chars):
        return True
    before, after = chars[at - 1], chars[at]
    if (before, after) == ("\r", "\n") or before == ZWJ or _extends(after):
        return False
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return False
    if _regional(before) and _regional(after):  # flags are pairs: 🇨🇳 is C then N
        run = 0
        while run < at and _regional(chars[at - 1 - run]):
            run += 1
        return run % 2 == 0
    return True


def _extends(char: str) -> bool:
    """A code point that belongs to the character before it."""
    if char == ZWJ or unicodedata.category(char) in ("Mn", "Me", "Mc"):
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _EXTENDING)


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"
