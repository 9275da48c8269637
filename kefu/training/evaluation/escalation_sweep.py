"""Choose `high_urgency_negative.min_probability` again, on a labelled dev split.

The rule also hands a message over when the model finds high urgency and a negative emotion
likely enough together (`kefu.serving.routing.high_negative_probability`). What "likely
enough" means depends on how sharp the bundle's calibrated probabilities are, so a retrained
model (other data, label smoothing, another temperature) needs the value chosen again: on dev,
never on the test split it is reported on. The model runs once per message; each candidate
value then re-routes the same predictions, and the hand-overs are scored against the labels
exactly as `kefu evaluate` scores them (`escalation_block`).

Usage: `points = sweep_min_probability(deployment, load_labelled("dev.jsonl"))`,
`chosen = choose(points, min_recall=0.9)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from kefu.serving.deployment import Deployment
from kefu.serving.routing import ConversationContext, decide
from kefu.training.data.loader import LabelledData
from kefu.training.evaluation.escalation import escalation_block

# Candidate values; None = the rule reads the best labels only (no probability).
GRID: tuple[float | None, ...] = (0.05, 0.08, 0.1, 0.12, 0.15, 0.18, 0.2, 0.25, 0.3, 0.4, 0.5, None)
NO_CURRENT = object()  # `choose` without a value in effect (None is one: the rule off)


@dataclass(frozen=True)
class SweepPoint:
    min_probability: float | None
    escalation: dict[str, Any]  # escalation_block: precision, recall, f1, rate, true_rate, ...

    def get(self, key: str) -> float:
        """A score, with an undefined one (no hand-over at all) counted as 0."""
        return self.escalation.get(key) or 0.0


def sweep_min_probability(
    deployment: Deployment, data: LabelledData, grid: Sequence[float | None] = GRID
) -> list[SweepPoint]:
    """The escalation block of `data` under each value of `grid`, everything else unchanged."""
    # untrimmed rankings: routing reads every urgency and emotion probability
    run = deployment.triage_in_batches(
        data.texts(), top_k=deployment.top_k_for_rerouting(1), check_texts=False
    )  # the labelled-data reader refused unusable rows
    predictions = [prediction for prediction, _ in run.results]
    no_context = ConversationContext()
    points = []
    for value in grid:
        policy = replace(deployment.policy, high_urgency_min_probability=value)
        decisions = [decide(prediction, no_context, policy) for prediction in predictions]
        points.append(SweepPoint(value, escalation_block(data, decisions, policy)))
    return points


def choose(
    points: Sequence[SweepPoint],
    min_recall: float | None = None,
    current: float | None | object = NO_CURRENT,
) -> SweepPoint | None:
    """The value to run: with `min_recall`, the one handing over least among those reaching it
    (missing an angry or critical customer is the costly error; after that, fewer hand-overs);
    without it, or when none reaches it, the best F1 (ties: fewer hand-overs). Among values
    that score alike on every count, `current` (the value in effect) stays: on a small dev
    split many do, and the grid's order is no reason to move. None when no value finds a
    single message the labels hand over: every F1 is then undefined."""
    if not any(point.get("recall") for point in points):
        return None

    def stays(point: SweepPoint) -> bool:
        return point.min_probability == current

    if min_recall is not None:
        reaching = [point for point in points if point.get("recall") >= min_recall]
        if reaching:
            return min(
                reaching,
                key=lambda point: (point.get("rate"), -point.get("precision"), not stays(point)),
            )
    return max(points, key=lambda point: (point.get("f1"), -point.get("rate"), stays(point)))
