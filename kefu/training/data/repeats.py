"""Texts that occur on more than one row of a labelled file, and the ones labelled two ways.

A text labelled twice alike is only extra weight in training; labelled two ways, it is a
question for the annotators (or a message that needs its conversation to be read), and the
model learns a coin toss. Texts are compared folded (NFKC, lower case, no white space), as
`kefu data split` groups them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from kefu.serving.taxonomy import HEADS
from kefu.training.data.loader import LabelledRow


def fold_text(text: str) -> str:
    """The text as a repeat is recognised: NFKC, lower case, no white space."""
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


@dataclass
class Conflict:
    head: str
    first: LabelledRow  # the text's first row
    other: LabelledRow  # a later row labelling it otherwise

    def describe(self) -> str:
        unit = self.first.unit
        return (
            f"{unit} {self.other.line} {self.head} {self.other.labels[self.head]} where {unit} "
            f"{self.first.line} has {self.first.labels[self.head]} ({self.first.text[:30]!r})"
        )


@dataclass
class Repeats:
    texts: int = 0  # distinct texts on more than one row
    extra_rows: int = 0  # rows whose text an earlier row already had
    conflicts: list[Conflict] = field(default_factory=list)  # one per (text, head) at most


def find_repeats(rows: Sequence[LabelledRow]) -> Repeats:
    first: dict[str, LabelledRow] = {}
    found = Repeats()
    repeated: set[str] = set()
    conflicting: set[tuple[str, str]] = set()
    for row in rows:
        key = fold_text(row.text)
        earlier = first.setdefault(key, row)
        if earlier is row:
            continue
        found.extra_rows += 1
        repeated.add(key)
        for head in HEADS:
            mine, theirs = row.labels[head], earlier.labels[head]
            if mine and theirs and mine != theirs and (key, head) not in conflicting:
                conflicting.add((key, head))
                found.conflicts.append(Conflict(head, earlier, row))
    found.texts = len(repeated)
    return found
