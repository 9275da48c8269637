"""Does a greeting before a message, or a thanks after it, change what the model reads?

By the taxonomy it must not: greetings aside, the intent is the request's, and routine
politeness inside a request stays `neutral`. Customers wrap requests so (你好，…, … 谢谢) where a
chat widget keeps greeting and request in one message, while the labelled real messages seldom
are, so the test scores cannot show how a model reads them (docs/experiments.md, run WR: on
real dev, the default model changed 4.7% of intents with a greeting before the message and
5.1% with a thanks after it). The `politeness` block of each test set counts, per head, the
share of messages whose label changes once wrapped, where the taxonomy says it must stay; no
gold label is needed.

Which messages may be wrapped is read off the model's own labels for the message as written
(a test set need not be labelled): no greeting before an `angry` one, thanks only after a calm
one and never after a `greeting` (好的 谢谢 is thanks), neither around an `other` message under
six characters (你好 [数字x] is a greeting). Each message gets one of the wrappers below in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kefu.serving.deployment import Deployment
from kefu.serving.taxonomy import HEADS
from kefu.training.data.augment import END_PUNCT
from kefu.training.evaluation.inference import EvaluationRun, run_deployment

OPENERS = ("你好，", "在吗 ", "请问")
CLOSERS = ("，谢谢", " 麻烦了")
CALM = ("neutral", "positive", "anxious")
MIN_OTHER_CHARS = 6  # an `other` message this long holds a question a greeting does not change


def politeness_block(
    deployment: Deployment, texts: Sequence[str], outputs: EvaluationRun
) -> dict[str, Any]:
    """{"opener": {"n", "changed": {head: share}, "changed_answered": {head: share}},
    "closer": {...}}: wrapped as the module says."""
    labels = deployment.bundle.labels
    read = {
        head: [labels[head][i] if i >= 0 else None for i in outputs[head].predicted]
        for head in HEADS
    }
    opener_rows, closer_rows = wrappable(texts, read)
    opened = [f"{OPENERS[k % len(OPENERS)]}{texts[i]}" for k, i in enumerate(opener_rows)]
    closed = [
        f"{texts[i].rstrip(END_PUNCT)}{CLOSERS[k % len(CLOSERS)]}"
        for k, i in enumerate(closer_rows)
    ]
    return {
        "opener": _changed(deployment, outputs, opener_rows, opened),
        "closer": _changed(deployment, outputs, closer_rows, closed),
    }


def wrappable(
    texts: Sequence[str], read: dict[str, list[str | None]]
) -> tuple[list[int], list[int]]:
    """Rows a greeting may go before, rows a thanks may go after, by the labels `read`."""
    substantial = [
        read["intent"][i] != "other" or len(text) >= MIN_OTHER_CHARS for i, text in enumerate(texts)
    ]
    openers = [i for i in range(len(texts)) if substantial[i] and read["emotion"][i] != "angry"]
    closers = [
        i
        for i in range(len(texts))
        if substantial[i] and read["emotion"][i] in CALM and read["intent"][i] != "greeting"
    ]
    return openers, closers


def _changed(
    deployment: Deployment, outputs: EvaluationRun, rows: list[int], wrapped: list[str]
) -> dict[str, Any]:
    """Per head, the share of labels that change, and of the answered ones (the labels the
    model did not abstain on, which the bot acts on): most that move were unsure already."""
    none: dict[str, float | None] = {head: None for head in HEADS}
    if not rows:
        return {"n": 0, "changed": none, "changed_answered": dict(none)}
    again = run_deployment(deployment, wrapped)
    changed, changed_answered = dict(none), dict(none)
    for head in filter(deployment.bundle.trained, HEADS):
        moved = again[head].predicted != outputs[head].predicted[rows]
        answered = ~outputs[head].abstain[rows]
        changed[head] = float(np.mean(moved))
        changed_answered[head] = float(np.mean(moved[answered])) if answered.any() else None
    return {"n": len(rows), "changed": changed, "changed_answered": changed_answered}


def politeness_sentence(block: dict[str, Any]) -> str:
    """One line for report.md and the model card."""
    wrappers = {
        "opener": "/".join(word.strip(" ，") for word in OPENERS) + " before",
        "closer": "/".join(word.strip(" ，") for word in CLOSERS) + " after",
    }
    parts = []
    for kind, words in wrappers.items():
        entry = block[kind]
        shares = ", ".join(
            _shares(head, share, entry["changed_answered"][head])
            for head, share in entry["changed"].items()
            if share is not None
        )
        parts.append(f"{words} {entry['n']:,} messages: {shares or '—'}")
    return (
        "Politeness (the share of labels that change when a message is wrapped, where the "
        "taxonomy says none may): " + "; ".join(parts) + "."
    )


def _shares(head: str, changed: float, answered: float | None) -> str:
    of_answered = f" ({answered:.1%} of those answered)" if answered is not None else ""
    return f"{head} {changed:.1%}{of_answered}"
