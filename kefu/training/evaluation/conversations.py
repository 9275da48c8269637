"""Hand-over per conversation: are the conversations that need a person handed over, and early?

`escalation_block` scores messages one at a time, without context. A contact centre hands over
conversations: on a test set whose rows carry `session` and `turn` (the real JD chat turns),
each conversation is routed turn by turn with the context a server caller sends (turn number,
earlier intents, None where the intent abstained, and how often the bot already asked the
customer to choose), through `routing.decide`, as `kefu score --session-col` routes a log.
Model predictions do not depend on context, so the predictions of evaluation's one pass over
the texts are reused and only the routing walks the turns.

A conversation *needs a person* when the content rules fire on any turn's gold labels
(`gold_reasons`). Precision, recall and *on time* (handed over no later than the first turn
that needs a person) count the turns kefu routes `human` for a content reason, the reasons the
labels can call for; `handed_over` and the first hand-over's turn and reasons count every rule,
the conversation rules (turn limit, repeated intent, failed clarification) included, which is
what a contact centre sees. Rows without a
session form no conversation and are left out; a turn lacking a gold label is routed as part of
its conversation but never counts as needing a person.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kefu.serving.batch.sessions import turn_number
from kefu.serving.classifier import Prediction
from kefu.serving.routing import (
    CONTENT_REASONS,
    Action,
    ConversationContext,
    choose_action,
    decide,
)
from kefu.serving.routing_policy import RoutingPolicy
from kefu.serving.taxonomy import HEADS
from kefu.training.data.loader import LabelledData, LabelledRow
from kefu.training.evaluation.escalation import gold_reasons


def conversations_of(data: LabelledData) -> dict[str, list[LabelledRow]]:
    """session -> its labelled rows in turn order (file order where turns tie or are missing)."""
    return {
        session: [data.rows[position] for position in positions]
        for session, positions in _session_positions(data).items()
    }


def _session_positions(data: LabelledData) -> dict[str, list[int]]:
    """session -> the positions of its rows in `data.rows`, in turn order."""
    sessions: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for position, row in enumerate(data.rows):
        session = row.extra.get("session")
        if session in (None, ""):
            continue
        turn = turn_number(row.extra.get("turn"))
        sessions[str(session)].append((float(turn) if turn is not None else float("inf"), position))
    return {key: [position for _, position in sorted(turns)] for key, turns in sessions.items()}


def conversation_block(
    data: LabelledData, predictions: Sequence[Prediction], policy: RoutingPolicy
) -> dict[str, Any] | None:
    """{"conversations", "need_person", "precision", "recall", "on_time", "handed_over", ...};
    None when the data has no sessions. `predictions`: one per row of `data`, every label ranked
    (`EvaluationRun.predictions`), so routing reads the probabilities the server reads."""
    positions = _session_positions(data)
    if not positions:
        return None
    sessions = {key: [data.rows[i] for i in rows] for key, rows in positions.items()}
    ordered = [predictions[i] for rows in positions.values() for i in rows]
    return score_conversations(sessions, ordered, policy)


def score_conversations(
    sessions: dict[str, list[LabelledRow]],
    predictions: list[Prediction],
    policy: RoutingPolicy,
) -> dict[str, Any]:
    """The block from each turn's prediction (`predictions`: the sessions' rows, in order)."""
    rows = [row for turns in sessions.values() for row in turns]
    if len(predictions) != len(rows):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} turns")
    remaining = iter(predictions)
    walks = [_walk(turns, remaining, policy) for turns in sessions.values()]
    needing = [walk for walk in walks if walk.needed_at is not None]
    for_content = [walk for walk in walks if walk.content_at is not None]
    handed = [walk for walk in walks if walk.handed_at is not None]
    found = [walk for walk in needing if walk.content_at is not None]
    early = [walk for walk in found if walk.content_at <= walk.needed_at]  # type: ignore[operator]
    first_turns = sorted(walk.handed_turn for walk in handed)
    return {
        "conversations": len(walks),
        "turns": len(rows),
        "need_person": len(needing),
        # content rules only: is the conversation that needs a person found, and early?
        "handed_over_for_content": len(for_content),
        "precision": len(found) / len(for_content) if for_content else None,
        "recall": len(found) / len(needing) if needing else None,
        "on_time": len(early) / len(needing) if needing else None,
        # every rule, the conversation rules included: what the contact centre sees
        "handed_over": len(handed),
        "handed_over_rate": len(handed) / len(walks),
        "first_handover_turn_median": first_turns[len(first_turns) // 2] if first_turns else None,
        "first_handover_reasons": dict(
            Counter(reason for walk in handed for reason in walk.reasons).most_common()
        ),
    }


@dataclass
class _Walked:
    """Where one conversation first needed a person (gold) and was handed over (routed)."""

    needed_at: int | None = None  # position of the first turn whose gold labels need a person
    content_at: int | None = None  # first turn routed human with a content reason
    handed_at: int | None = None  # first turn routed human for any reason
    handed_turn: int = 0  # its turn number
    reasons: list[str] = field(default_factory=list)  # the reasons of that turn


def _walk(
    turns: list[LabelledRow], predictions: Iterator[Prediction], policy: RoutingPolicy
) -> _Walked:
    walked = _Walked()
    previous: list[str | None] = []
    clarifications = 0
    for position, row in enumerate(turns, start=1):
        prediction = next(predictions)
        context = ConversationContext(
            turn_number(row.extra.get("turn")) or position, tuple(previous), clarifications
        )
        decision = decide(prediction, context, policy)
        previous.append(None if prediction.intent.abstain else prediction.intent.label)
        clarifications += decision.action is Action.CLARIFY
        if (
            walked.needed_at is None
            and all(row.labels.get(head) for head in HEADS)
            and choose_action(gold_reasons(row.labels, row.text, policy)) is Action.HUMAN
        ):
            walked.needed_at = position
        if decision.action is not Action.HUMAN:
            continue
        if walked.handed_at is None:
            walked.handed_at, walked.handed_turn = position, context.turn or position
            walked.reasons = [reason.value for reason in decision.reasons]
        if walked.content_at is None and set(decision.reasons) & set(CONTENT_REASONS):
            walked.content_at = position
    return walked
