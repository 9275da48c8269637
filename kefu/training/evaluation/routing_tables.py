"""The tables of what routing did on a test set: escalation one message at a time and whole
conversations, each saying which policy it was routed with.

Read only from the `metrics.json` dictionary, as report.md and the model card both show them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kefu.serving.policy_files import BUNDLE_SOURCE
from kefu.training.evaluation.tables import fmt, table


def routed_with(routing: Mapping[str, Any]) -> str:
    """Which policy a routing block was routed with, as a clause: a tuned policy file hands
    over other messages than the bundle's own, so the numbers mean nothing without it; the
    start of its sha256 tells apart two files of one name. Blocks written before evaluation
    recorded it say nothing."""
    source = routing.get("policy")
    if source is None:
        return ""
    sha256 = routing.get("policy_sha256")  # absent from blocks written before it was recorded
    content = f" (sha256 `{sha256[:12]}`)" if sha256 else ""
    if source == BUNDLE_SOURCE:
        return f" Routed with the bundle's policy.yaml{content}."
    return f" Routed with the policy file `{source}`{content} laid over the bundle's policy.yaml."


def escalation_table(block: Mapping[str, Any]) -> list[str]:
    """Handing over to people: the model's routing against the routing of the gold labels."""
    esc = block.get("escalation")
    if not esc:
        return []
    if not esc["n"]:
        return [
            "Escalation: not measured on this set; it compares the routing of the gold labels "
            "with kefu's, so it needs rows labelled for every head, and none is."
        ]
    actions = esc["actions"]
    header = [
        "n",
        "precision",
        "recall",
        "F1",
        "human rate",
        "true rate",
        "bot",
        "clarify",
        "human",
    ]
    row = [
        fmt(esc["n"]),
        fmt(esc["precision"]),
        fmt(esc["recall"]),
        fmt(esc["f1"]),
        fmt(esc["rate"]),
        fmt(esc["true_rate"]),
        *(fmt(actions.get(action)) for action in ("bot", "clarify", "human")),
    ]
    return [
        "Escalation: the policy's content rules on the predicted labels (what kefu does) against "
        "the same rules on the gold labels (what should happen), one message at a time; the last "
        f"three columns are the action mix.{routed_with(esc)}",
        "",
        *table(header, [row]),
        *_escalation_spread(esc.get("intervals")),
    ]


def _escalation_spread(intervals: Mapping[str, Any] | None) -> list[str]:
    if not intervals or intervals.get("recall") is None:
        return []

    def span(name: str) -> str:
        values = intervals.get(name)
        return "—" if values is None else f"{values[0]:.2f}-{values[1]:.2f}"

    return [
        "",
        f"95% bootstrap intervals (as for macro-F1 above): precision {span('precision')}, "
        f"recall {span('recall')}, human rate over the true rate {span('rate_ratio')}.",
    ]


def conversation_table(block: Mapping[str, Any]) -> list[str]:
    """Handing over whole conversations (test sets with session and turn columns)."""
    conv = block.get("conversations")
    if not conv:
        return []
    header = ["conversations", "need a person", "handed over", "precision", "recall", "on time"]
    row = [
        fmt(conv["conversations"]),
        fmt(conv["need_person"]),
        fmt(conv["handed_over_for_content"]),
        fmt(conv["precision"]),
        fmt(conv["recall"]),
        fmt(conv["on_time"]),
    ]
    reasons = ", ".join(f"{reason} {n}" for reason, n in conv["first_handover_reasons"].items())
    return [
        "Conversations: each session routed turn by turn with its context, as the server and "
        "`kefu score --session-col` route; a conversation needs a person when the content rules "
        "fire on a turn's gold labels, and counts as handed over at its first turn routed to a "
        "human for a content reason (on time: no later than the first turn that needs it)."
        f"{routed_with(conv)}",
        "",
        *table(header, [row]),
        "",
        f"With every rule (turn limit, repeated intent, failed clarification too) "
        f"{fmt(conv['handed_over'])} of {fmt(conv['conversations'])} conversations reach a "
        f"person, the first hand-over at customer turn {fmt(conv['first_handover_turn_median'])} "
        f"(median); reasons of those first hand-overs: {reasons or 'none'}.",
    ]
