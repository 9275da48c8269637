"""Which heads and classes the training data can teach, decided before the model is built.

A head with (almost) no labels, or labels of one class only, is not trained, and a class with few
rows is named in the log and the model card: routing rules keyed on a label the model never
predicts would never fire.
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
    config: TrainConfig, train_set: EncodedSplit, taxonomy: Taxonomy, log: Callable[[str], None]
) -> HeadPlan:
    """A head the data cannot teach is not trained: (almost) no labels, or one class only.

    It would predict noise that drives routing (a random urgency head sends messages to P0), or
    one answer for every message (an emotion head taught only `angry` hands every message to a
    person); serving skips it instead.
    """
    reasons = untrained_heads(train_set, config.min_head_labels, taxonomy)
    notes: list[str] = []
    if reasons:
        config = replace(
            config,
            loss_weights={h: 0.0 if h in reasons else w for h, w in config.loss_weights.items()},
        )
        for reason in dict.fromkeys(reasons.values()):
            heads = [head for head, why in reasons.items() if why == reason]
            notes.append(
                f"not trained ({reason}): {', '.join(heads)}; serving returns no label for "
                "them and routing ignores them"
            )
            log(f"warning: {notes[-1]}")
    trained = tuple(head for head in HEADS if head not in reasons)
    return HeadPlan(config, trained, list(reasons), notes)


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


def untrained_heads(train_set: EncodedSplit, min_labels: int, taxonomy: Taxonomy) -> dict[str, str]:
    """head -> why it is not trained: fewer than `min_labels` labelled training rows, or every
    one of them the same class (such a head learns nothing, and scores 1.0 on a test set of
    the same export). The intent head must be trained: routing is keyed on it."""
    reasons = {}
    for head in HEADS:
        labels = train_set.labels[head][train_set.labels[head] >= 0]
        classes = np.unique(labels)
        if len(labels) < min_labels:
            reasons[head] = f"fewer than {min_labels} labelled training rows"
            if head == "intent":
                raise DataError(
                    f"only {len(labels)} training rows carry an intent label (at least "
                    f"{min_labels} needed): routing is keyed on the intent; label more rows or "
                    "lower min_head_labels"
                )
        elif len(classes) == 1:
            only = taxonomy.labels(head)[int(classes[0])]
            reasons[head] = f"every labelled training row is {only}"
            if head == "intent":
                raise DataError(
                    f"every training row with an intent label is {only}: routing is keyed on "
                    "the intent, which needs rows of two intents at least"
                )
    return reasons
