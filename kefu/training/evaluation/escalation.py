"""Escalation measured against the labels: does the model hand the right messages to people?

The routing policy's content rules (human requested, complaint, critical urgency, angry, high
urgency with a negative emotion: `kefu.serving.routing.content_reasons`) are applied twice to
each labelled message: to its gold labels, which says whether a person should take it, and to
the model's predictions, through the same `Deployment.triage` the server runs, which says
whether kefu hands it over (on predictions `high_urgency_negative` also fires from the heads'
probabilities, the policy's `min_probability`; gold labels are read as labels). Both sides
read the text's request for a person with the same detector (`asks_for_human`), so the
numbers measure the model, not the detector (measured on its own in
tests/serving/test_asks_for_human.py).

Messages are routed one by one, without conversation context (a test file holds messages,
not conversations), so the conversation rules never fire here: the action mix is what a first
message gets. Rows lacking any head's gold label are left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from kefu.serving.entities import asks_for_human
from kefu.serving.routing import Action, Decision, Reason, choose_action, content_reasons
from kefu.serving.routing_policy import RoutingPolicy
from kefu.serving.taxonomy import HEADS
from kefu.training.data.loader import LabelledData
from kefu.training.evaluation.bootstrap import escalation_intervals, resampling_units


def gold_reasons(
    labels: Mapping[str, str | None], text: str, policy: RoutingPolicy
) -> list[Reason]:
    """The content rules on a message's gold labels: why a person should take it, if at all."""
    intent = labels["intent"]
    assert intent is not None  # callers leave out rows lacking a gold label
    return content_reasons(
        intent, labels["urgency"], labels["emotion"], asks_for_human(text), policy
    )


def escalation_block(
    data: LabelledData, decisions: Sequence[Decision], policy: RoutingPolicy
) -> dict[str, Any]:
    """{"precision", "recall", "f1", "rate", "true_rate", "n", "actions", "true_reasons",
    "intervals", ...}; "intervals" holds 95% bootstrap intervals (bootstrap.py) of precision,
    recall and the predicted over the true human rate."""
    pairs = list(zip(data.rows, decisions, strict=True))
    kept = [i for i, (row, _) in enumerate(pairs) if all(row.labels.get(head) for head in HEADS)]
    rows = [pairs[i] for i in kept]
    true_human, predicted_human = [], []
    actions: Counter[str] = Counter()
    true_reasons: Counter[str] = Counter()
    predicted_reasons: Counter[str] = Counter()
    for row, decision in rows:
        reasons = gold_reasons(row.labels, row.text, policy)
        true_human.append(choose_action(reasons) == Action.HUMAN)
        predicted_human.append(decision.action == Action.HUMAN)
        actions[decision.action.value] += 1
        true_reasons.update(reason.value for reason in reasons)
        predicted_reasons.update(reason.value for reason in decision.reasons)
    n = len(rows)
    hits = sum(t and p for t, p in zip(true_human, predicted_human, strict=True))
    precision = hits / sum(predicted_human) if any(predicted_human) else None
    recall = hits / sum(true_human) if any(true_human) else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    return {
        "n": n,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "rate": sum(predicted_human) / n if n else None,
        "true_rate": sum(true_human) / n if n else None,
        "true_human": sum(true_human),
        "predicted_human": sum(predicted_human),
        "actions": {action.value: actions[action.value] / n if n else None for action in Action},
        "true_reasons": dict(sorted(true_reasons.items())),
        "predicted_reasons": dict(sorted(predicted_reasons.items())),
        "intervals": escalation_intervals(
            resampling_units(data)[0][kept], true_human, predicted_human
        ),
    }
