"""Which heads and classes the training data can teach, decided before the model is built.

A head with (almost) no labels is not trained, and a class with few rows is named in the log and
the model card: routing rules keyed on a label the model never predicts would never fire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from kefu.errors import DataError
from kefu.serving.taxonomy import HEADS, Taxonomy
from kefu.training.config import TrainConfig
from kefu.training.sampling import EncodedSplit


class HeadPlan(NamedTuple):
    config: TrainConfig  # loss weight 0 for the untrained heads
    trained: tuple[str, ...]
    untrained: list[str]
    notes: list[str]  # for the manifest


def plan_heads(
    config: TrainConfig, train_set: EncodedSplit, log: Callable[[str], None]
) -> HeadPlan:
    """A head with (almost) no labels is not trained.

    It would predict noise that drives routing (a random urgency head sends messages to P0);
    serving skips it instead.
    """
    untrained = untrained_heads(train_set, config.min_head_labels)
    notes: list[str] = []
    if untrained:
        config = replace(
            config,
            loss_weights={h: 0.0 if h in untrained else w for h, w in config.loss_weights.items()},
        )
        notes.append(
            f"not trained (fewer than {config.min_head_labels} labelled training rows): "
            f"{', '.join(untrained)}; serving returns no label for them and routing ignores them"
        )
        log(f"warning: {notes[-1]}")
    trained = tuple(head for head in HEADS if head not in untrained)
    return HeadPlan(config, trained, untrained, notes)


# A class with fewer training rows than this is named in the log and the model card.
MIN_CLASS_ROWS = 5


def thin_classes(
    train_set: EncodedSplit,
    taxonomy: Taxonomy,
    trained: tuple[str, ...],
    log: Callable[[str], None],
) -> list[str]:
    """Classes the model can barely or never predict, said before anyone relies on them: with
    no `critical` or `angry` row, the routing rules on them never fire."""
    thin = []
    for head in trained:
        labels = train_set.labels[head]
        counts = np.bincount(labels[labels >= 0], minlength=len(taxonomy.labels(head)))
        thin += [
            f"{head} {label} {count}"
            for label, count in zip(taxonomy.labels(head), counts, strict=True)
            if count < MIN_CLASS_ROWS
        ]
    if not thin:
        return []
    note = (
        f"classes with fewer than {MIN_CLASS_ROWS} training rows, which the model rarely or "
        f"never predicts (rules on them rarely fire): {', '.join(thin)}"
    )
    log(f"warning: {note}")
    return [note]


def untrained_heads(train_set: EncodedSplit, min_labels: int) -> list[str]:
    """Heads with fewer than `min_labels` labelled training rows; intent must never be one."""
    counts = {head: int((train_set.labels[head] >= 0).sum()) for head in HEADS}
    untrained = [head for head in HEADS if counts[head] < min_labels]
    if "intent" in untrained:
        raise DataError(
            f"only {counts['intent']} training rows carry an intent label (at least {min_labels} "
            "needed): routing is keyed on the intent; label more rows or lower min_head_labels"
        )
    return untrained
