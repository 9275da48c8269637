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
"""

from __future__ import annotations

import re
import unicodedata

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


def preview(value: object, limit: int = PREVIEW_CHARS) -> str:
    """`repr(value)` if it fits in `limit` characters, else its longest beginning made of whole
    characters and escapes that fits with "…" after it."""
    return cut(repr(value), limit, escaped=True)


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
