"""`report.md`: the evaluation as tables a person reads, with the PNG figures next to it.

Built only from the `metrics.json` dictionary (plus label names), so the report never shows a
number that the machine-readable file lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kefu.serving.policy_files import BUNDLE_SOURCE
from kefu.serving.taxonomy import HEADS

REPORT_FILE = "report.md"


def fmt(value: Any, digits: int = 3) -> str:
    """A score for a table: fixed digits, an em dash when undefined."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def points(value: float | None, reference: float | None) -> str:
    """Difference in F1 points (x100), signed: how much `value` is above `reference`."""
    if value is None or reference is None:
        return "—"
    return f"{100 * (value - reference):+.1f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def summary_table(metrics: Mapping[str, Any]) -> list[str]:
    """Per head: the model against the baseline and its INT8 twin, calibration, abstention."""
    rows = []
    for head in HEADS:
        model, base, int8 = metrics["model"][head], metrics["baseline"][head], metrics["int8"][head]
        rows.append(
            [
                head,
                fmt(model["n"]),
                fmt(model["accuracy"]),
                fmt(model["macro_f1"]),
                fmt(base["macro_f1"]),
                points(model["macro_f1"], base["macro_f1"]),
                fmt(int8["macro_f1"]),
                points(int8["macro_f1"], model["macro_f1"]),
                fmt(model["ece_uncalibrated"]),
                fmt(model["ece"]),
                fmt(model["abstain_rate"]),
                fmt(model["answered_accuracy"]),
            ]
        )
    header = [
        "head",
        "n",
        "accuracy",
        "macro-F1",
        "baseline macro-F1",
        "gain (pts)",
        "INT8 macro-F1",
        "INT8 Δ (pts)",
        "ECE T=1",
        "ECE",
        "abstain rate",
        "answered accuracy",
    ]
    return table(header, rows)


def uncertainty_sentence(block: Mapping[str, Any]) -> str | None:
    """The bootstrap intervals of a set's macro-F1 and of the gain over the baseline, in words."""
    spread = block.get("uncertainty")
    if not spread:
        return None

    def span(values: list[float] | None, signed: bool = False) -> str:
        if values is None:
            return "—"
        low, high = values
        return f"{low:+.1f} to {high:+.1f}" if signed else f"{low:.3f}-{high:.3f}"

    scores = ", ".join(f"{head} {span(spread[head]['macro_f1'])}" for head in HEADS)
    gains = ", ".join(f"{head} {span(spread[head]['lead_points'], True)}" for head in HEADS)
    units = (
        f"{spread['units']} messages"
        if spread["unit"] == "message"
        else f"{spread['units']} units (rows sharing a `{spread['unit']}` count as one)"
    )
    return (
        f"How much another draw of such messages could move these: {spread['level']:.0%} "
        f"bootstrap intervals from {spread['resamples']} resamples of the set's {units}, model "
        f"and baseline scored on the same draws. Macro-F1: {scores}. Gain over the baseline, in "
        f"points: {gains}."
    )


def public_dev_table(public_dev: Mapping[str, Any]) -> list[str]:
    """One row per public set; the extra column holds what matters for that set's task."""
    rows = []
    for name, result in public_dev.items():
        if result["task"] == "chitchat_vs_business":
            extra = (
                f"human_agent on {result['asks_human_rows']} rows with 人工: "
                f"{fmt(result['human_agent_share_on_asks_human'])}"
            )
        elif result["task"] == "polarity":
            extra = (
                f"predicted neutral: {fmt(result['neutral_share'])}; "
                f"accuracy when not neutral: {fmt(result['accuracy_non_neutral'])}"
            )
        else:
            extra = "surprise dropped; sad→dissatisfied is approximate"
        rows.append(
            [
                name,
                result["task"],
                _sampled(result),
                fmt(result["accuracy"]),
                fmt(result["macro_f1"]),
                extra,
            ]
        )
    return table(["set", "task", "n", "accuracy", "macro-F1", "notes"], rows)


def _sampled(result: Mapping[str, Any]) -> str:
    total = result.get("rows_in_file", result["n"])
    return fmt(result["n"]) if total == result["n"] else f"{result['n']} of {total}"


def per_class_table(
    head_metrics: Mapping[str, Any],
    names: Mapping[str, str],
    predicted: Mapping[str, int] | None = None,  # label -> rows predicted as it
    *,
    min_support: int,
) -> list[str]:
    """Undefined scores are dashes: recall and F1 of a label with no gold row, precision of a
    label never predicted (metrics.json stores 0 for both, as scikit-learn does).

    Every class is listed, however rare, but the head's macro-F1 averages only those with at
    least `min_support` gold rows (`supported_macro_f1`); the `averaged` column marks them, so
    a reader can tell which F1s the headline number is made of."""
    rows = []
    for label, scores in head_metrics["per_class"].items():
        unpredicted = predicted is not None and predicted.get(label, 0) == 0
        ungold = scores["support"] == 0
        rows.append(
            [
                f"`{label}`",
                names.get(label, ""),
                "—" if unpredicted else fmt(scores["precision"]),
                "—" if ungold else fmt(scores["recall"]),
                "—" if ungold else fmt(scores["f1"]),
                fmt(scores["support"]),
                "yes" if scores["support"] >= min_support else "no",
            ]
        )
    header = ["label", "name", "precision", "recall", "F1", "support", "averaged"]
    return [*table(header, rows), "", _averaged_legend(head_metrics["per_class"], min_support)]


def _averaged_legend(per_class: Mapping[str, Mapping[str, Any]], min_support: int) -> str:
    """One line under a per-class table: what `averaged` means, and how many classes it is."""
    averaged = sum(scores["support"] >= min_support for scores in per_class.values())
    if not averaged:
        return (
            f"averaged: no class has {min_support} or more test rows, so the head's macro-F1 "
            "averages none and is undefined (—)."
        )
    return (
        f"averaged: the head's macro-F1 averages the F1 of these {averaged} of "
        f"{len(per_class)} classes, those with at least {min_support} test rows; the others are "
        "listed, not averaged."
    )


def predicted_counts(block: Mapping[str, Any], head: str) -> dict[str, int] | None:
    """label -> rows predicted as it, read off the set's confusion matrix (columns)."""
    confusion = block.get("confusion", {}).get(head)
    if not confusion:
        return None
    columns = [sum(column) for column in zip(*confusion["matrix"], strict=True)]
    return dict(zip(confusion["labels"], columns, strict=True))


def set_blocks(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, block) per test set, the lead set first: the first set's block is the top level."""
    names = list(metrics.get("test_sets") or ["test"])
    blocks = [(name, metrics if i == 0 else metrics[name]) for i, name in enumerate(names)]
    lead = metrics.get("lead", names[0])
    return sorted(blocks, key=lambda item: item[0] != lead)


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


def by_source_table(block: Mapping[str, Any], min_support: int = 1) -> list[str]:
    """One row per source with at least `min_support` messages; smaller ones (whose macro-F1
    averages no class) are counted in one line, their scores left to metrics.json."""
    sources = block.get("by_source", {})
    shown = {source: part for source, part in sources.items() if part["n"] >= min_support}
    rows = [
        [source, fmt(part["n"]), *(fmt(part[head]["macro_f1"]) for head in HEADS)]
        for source, part in shown.items()
    ]
    lines = table(["source", "n", *(f"{head} macro-F1" for head in HEADS)], rows) if rows else []
    small = [part["n"] for source, part in sources.items() if source not in shown]
    if small:
        counted = (
            f"{len(small)} sources with fewer than {min_support} messages ({sum(small)} in all) are"
            if len(small) > 1
            else f"1 source with fewer than {min_support} messages ({small[0]}) is"
        )
        lines += [
            "",
            f"{counted} left out of this table (`by_source` in metrics.json holds "
            f"{'them' if len(small) > 1 else 'it'}).",
        ]
    return lines


def render_report(
    metrics: Mapping[str, Any],
    label_names: Mapping[str, Mapping[str, str]],
    figures: Mapping[str, Mapping[str, Mapping[str, Path]]],
    report_dir: Path,
) -> str:
    bundle = metrics["bundle"]
    lines = [
        f"# kefu evaluation: model {bundle['model_version']}",
        "",
        f"On the bundle's ONNX {bundle['evaluated_variant']} model (serving default: "
        f"{bundle['default_variant']}), base model `{bundle['base_model']}`. The baseline is character "
        f"1-3-gram TF-IDF + logistic regression fitted on the same training data "
        f"(`{metrics['train_data']['file']}`, {metrics['train_data']['n']} rows, with the training "
        f"run's file weights). Macro-F1 averages the classes with at least "
        f"{metrics.get('min_support', 1)} test rows (every class is in the per-class tables, the "
        f"averaged ones marked). ECE uses "
        f"{metrics['ece_bins']} equal-width bins; `ECE T=1` is before temperature scaling. Rows lacking "
        "a head's label are skipped for that head.",
    ]
    for name, block in set_blocks(metrics):
        data = block["data"]
        lines += [
            "",
            f"## Test set `{name}`",
            "",
            f"`{data['file']}`: {block['n']} rows, {data['rejected']} rejected by the loader.",
            "",
            *summary_table(block),
            "",
            "Gain and INT8 Δ are macro-F1 differences in points (x100): the model minus the baseline, "
            "INT8 minus fp32. Answered accuracy is the accuracy on rows where the head does not abstain.",
        ]
        spread = uncertainty_sentence(block)
        if spread:
            lines += ["", spread]
        if block.get("by_source"):
            lines += ["", *by_source_table(block, metrics.get("min_support", 1))]
        if block.get("escalation"):
            lines += ["", *escalation_table(block)]
        if block.get("conversations"):
            lines += ["", *conversation_table(block)]
        for head in HEADS:
            lines += ["", f"### {name}: {head}", ""]
            if not block["model"][head]["n"]:
                why = (
                    f"no row of this set carries a {head} label the bundle knows"
                    if block["model"][head].get("trained", True)
                    else "the bundle never trained this head"
                )
                lines += [f"Not scored: {why}.", ""]
                continue
            lines += [
                *per_class_table(
                    block["model"][head],
                    label_names.get(head, {}),
                    predicted_counts(block, head),
                    min_support=metrics.get("min_support", 1),
                ),
                "",
            ]
            for kind in ("confusion", "reliability"):
                figure = figures.get(name, {}).get(kind, {}).get(head)
                if figure is not None:
                    lines += [f"![{name} {head} {kind}]({_relative(figure, report_dir)})", ""]
    if "public_dev" in metrics:
        lines += ["", "## Public real-text dev sets", ""]
        if metrics["public_dev"]:
            lines += [
                *public_dev_table(metrics["public_dev"]),
                "",
                "Reviews and social posts, not service chats (except JD): expect lower scores than on "
                "service messages; watch the trend when the training data changes.",
            ]
        else:
            lines.append("No public dev set was found.")
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    metrics: Mapping[str, Any],
    label_names: Mapping[str, Mapping[str, str]],
    figures: Mapping[str, Mapping[str, Mapping[str, Path]]],
    report_dir: Path,
) -> Path:
    path = report_dir / REPORT_FILE
    path.write_text(render_report(metrics, label_names, figures, report_dir), "utf-8")
    return path


def _relative(path: Path, start: Path) -> str:
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
