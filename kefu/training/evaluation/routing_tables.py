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


# (label in the table, key of the set's block): the INT8 model's hand-overs differ from fp32's
# where quantisation moves a label, and serving runs INT8 where it is the default variant
ESCALATION_MODELS = (("fp32", "escalation"), ("INT8", "int8_escalation"))


def escalation_table(block: Mapping[str, Any]) -> list[str]:
    """Handing over to people: each model's routing against the routing of the gold labels,
    one row per model (INT8 only where the block has it: a bundle without an INT8 model, or
    metrics written before it was measured)."""
    esc = block.get("escalation")
    if not esc:
        return []
    if not esc["n"]:
        return [
            "Escalation: not measured on this set; it compares the routing of the gold labels "
            "with kefu's, so it needs rows labelled for every head, and none is."
        ]
    measured = [(name, block[key]) for name, key in ESCALATION_MODELS if block.get(key)]
    header = [
        "model",
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
    rows = [
        [
            name,
            fmt(routing["n"]),
            fmt(routing["precision"]),
            fmt(routing["recall"]),
            fmt(routing["f1"]),
            fmt(routing["rate"]),
            fmt(routing["true_rate"]),
            *(fmt(routing["actions"].get(action)) for action in ("bot", "clarify", "human")),
        ]
        for name, routing in measured
    ]
    models = " and ".join(f"the {name} model" for name, _ in measured)
    return [
        "Escalation: the policy's content rules on the predicted labels (what kefu does) against "
        "the same rules on the gold labels (what should happen), one message at a time, for "
        f"{models}; the last three columns are the action mix.{routed_with(esc)}",
        "",
        *table(header, rows),
        *_escalation_spread(measured),
        *_nothing_to_find(esc),
    ]


def _nothing_to_find(esc: Mapping[str, Any]) -> list[str]:
    """Why recall is a dash on a set (a small one of a team's own, often) whose labels hand no
    message over: the dash is the set's, not a failure of the model."""
    if esc.get("true_rate"):
        return []
    return [
        "",
        "No message of this set is one its labels hand over (true rate 0), so recall and F1 "
        "are undefined (—), and precision too where kefu hands none over; a set with angry, "
        "critical or complaining customers measures them.",
    ]


def _escalation_spread(measured: list[tuple[str, Mapping[str, Any]]]) -> list[str]:
    spreads = []
    for name, routing in measured:
        intervals = routing.get("intervals")
        if not intervals or intervals.get("recall") is None:
            continue

        def span(key: str, intervals: Mapping[str, Any] = intervals) -> str:
            values = intervals.get(key)
            return "—" if values is None else f"{values[0]:.2f}-{values[1]:.2f}"

        model = f"{name} " if len(measured) > 1 else ""
        spreads.append(
            f"{model}precision {span('precision')}, recall {span('recall')}, human rate over "
            f"the true rate {span('rate_ratio')}"
        )
    if not spreads:
        return []
    return ["", f"95% bootstrap intervals (as for macro-F1 above): {'; '.join(spreads)}."]


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
