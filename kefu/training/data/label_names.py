"""Label values as people write them, resolved to taxonomy ids, with a "did you mean" when not.

Accepted for every head: the id (`refund_return`), the id in another case or with `-`/space for
`_` (`Refund-Return`), the taxonomy's Chinese name (`退款退货`, `高`, `愤怒`) and, for names made
of alternatives, each alternative when it names one label only (`质量问题` and `描述不符` both
mean `quality_issue`). Anything else is unknown, and the error suggests the closest ids and
names (difflib ratio, plus ids that start with the value: `refund` -> `refund_return`).
"""

from __future__ import annotations

import re

from kefu.close_words import close_words, did_you_mean
from kefu.serving.taxonomy import HEADS, Taxonomy

_SEPARATORS = re.compile(r"[\s\-]+")


def _fold(value: str) -> str:
    return _SEPARATORS.sub("_", value.strip()).lower()


class LabelNames:
    """One taxonomy's accepted spellings per head: `resolve(head, value) -> id | None`."""

    def __init__(self, taxonomy: Taxonomy):
        self.ids = {head: tuple(taxonomy.labels(head)) for head in HEADS}
        self.names = {head: taxonomy.names(head) for head in HEADS}
        self.spellings: dict[str, dict[str, str]] = {}
        for head in HEADS:
            names = taxonomy.names(head)
            spellings = {_fold(label): label for label in self.ids[head]}
            spellings |= {_fold(name): label for label, name in names.items()}
            parts: dict[str, set[str]] = {}
            for label, name in names.items():
                for part in re.split(r"[/／、]", name):
                    if part.strip():
                        parts.setdefault(_fold(part), set()).add(label)
            spellings |= {
                part: next(iter(labels))
                for part, labels in parts.items()
                if len(labels) == 1 and part not in spellings
            }
            self.spellings[head] = spellings

    def resolve(self, head: str, value: str) -> str | None:
        return self.spellings[head].get(_fold(value))

    def head_of(self, value: str) -> tuple[str, str] | None:
        """(head, id) for a value that names a label of exactly one head (doccano labels)."""
        found = {(head, label) for head in HEADS if (label := self.resolve(head, value))}
        return next(iter(found)) if len(found) == 1 else None

    def suggest(self, head: str, value: str, limit: int = 3) -> list[str]:
        """The closest ids to an unknown value (by id or by Chinese name)."""
        folded = _fold(value)
        spellings = self.spellings[head]
        prefixed = [label for label in self.ids[head] if folded and label.startswith(folded)]
        close = close_words(folded, spellings, limit=limit * 2, cutoff=0.5)
        ordered = [*prefixed, *(spellings[match] for match in close)]
        return list(dict.fromkeys(ordered))[:limit]

    def unknown_message(self, head: str, value: str) -> str:
        """Names what is accepted: each id with its Chinese name, as both resolve."""
        suggestion = did_you_mean(self.suggest(head, value), quote=True)
        hint = f"{suggestion} " if suggestion else ""
        names = self.names[head]
        accepted = ", ".join(
            f"{label} ({names[label]})" if label in names else label for label in self.ids[head]
        )
        return (
            f"unknown {head} label {value!r}; {hint}expected an id or its Chinese name (or one "
            f"part of a name with /): {accepted}"
        )
