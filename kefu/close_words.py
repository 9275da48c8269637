"""The known words closest to a misspelt one, worded one way wherever kefu names an unknown word.

`KEFU_*` variables, training config keys and heads, and label values all end an "unknown X"
error with the same "did you mean a or b?" (difflib's ratio, its default cutoff), so a user meets
one phrasing whichever file or flag held the typo. A synonym difflib cannot see (`learning_rate`
for `lr`) is passed as an alias of the word it means.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


def close_words(
    word: str,
    known: Iterable[str],
    *,
    limit: int = 2,
    cutoff: float = 0.6,
    aliases: Mapping[str, str] | None = None,
) -> list[str]:
    """An alias's known target alone (it says what was meant), else up to `limit` closest words."""
    known = list(known)
    aliased = (aliases or {}).get(word.lower())
    if aliased in known:
        return [aliased]
    return difflib.get_close_matches(word, known, n=limit, cutoff=cutoff)


def did_you_mean(words: Iterable[str], *, quote: bool = False) -> str:
    """'did you mean a or b?', or '' when nothing is close enough to offer."""
    shown = [repr(word) if quote else word for word in words]
    return f"did you mean {' or '.join(shown)}?" if shown else ""
