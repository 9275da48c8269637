"""Batches of similar length: the one rule every batched model call in kefu uses.

Padding a 10-token message to the longest row of its batch costs compute on every shorter row,
and real logs mix "在吗" with pasted order cards, so batched callers (bulk scoring, evaluation,
training's prediction passes, the benchmark, the server's micro-batcher) sort by length first.
Sorting is stable, so the layout, and with it every float the model returns, is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

# A micro-batch group is cut when a text is longer than this multiple of the group's shortest
# text (+ slack): a few concurrent requests rarely fill a batch, so cut on spread, not on count.
LENGTH_RATIO = 2.0
LENGTH_SLACK = 16


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Row indices sorted by length (stable) and cut into batches of `batch_size`."""
    order = sorted(range(len(lengths)), key=lambda row: lengths[row])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def length_groups(
    lengths: Sequence[int],
    max_size: int,
    ratio: float = LENGTH_RATIO,
    slack: int = LENGTH_SLACK,
) -> list[list[int]]:
    """Indices grouped by similar length: each group sorted, at most `max_size` long, cut
    where a length passes `ratio` x the group's shortest + `slack`."""
    groups: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda row: lengths[row]):
        current = groups[-1] if groups else None
        if (
            current is None
            or len(current) >= max_size
            or lengths[index] > ratio * lengths[current[0]] + slack
        ):
            groups.append([index])
        else:
            current.append(index)
    return groups
