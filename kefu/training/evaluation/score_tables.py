"""The tables of a test set's scores: per head against the baseline and INT8, per class, per
source, the bootstrap sentence, and the public dev sets.

Read only from the `metrics.json` dictionary, as report.md and the model card both show them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kefu.serving.taxonomy import HEADS
from kefu.training.evaluation.tables import fmt, points, table


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
            "averages none and is undefined (—); `kefu evaluate --min-support N` sets the bar, "
            "and `macro_f1_all` in metrics.json averages every class present."
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
