"""Work handed to batch scoring's worker processes that fails as a bug would, or as a read the
system refused, importable in a spawned worker (which unpickles a function by its module and
name)."""

from __future__ import annotations


def score_with_a_bug(texts: list[str], route_inputs: bool = False) -> None:
    raise TypeError(f"a bug while scoring {len(texts)} texts")


def score_with_a_refused_read(texts: list[str], route_inputs: bool = False) -> None:
    raise PermissionError(13, "Permission denied", "/srv/kefu/lexicon.txt")
