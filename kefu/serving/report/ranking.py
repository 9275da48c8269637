"""The order every counted table of the report lists its rows in: most first, equal counts by
key ascending.

`Counter.most_common()` breaks ties by first appearance, so the same rows re-exported in another
order, or the same files given in another order, would rank tied rows differently and read as a
different page; a key tie-break keeps the page a function of the counts alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

Key = TypeVar("Key")  # a label, or a tuple of labels (queue x intent)


def ranked(counts: Mapping[Key, int]) -> list[tuple[Key, int]]:
    """(key, count) pairs, the largest count first, equal counts by key ascending."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
