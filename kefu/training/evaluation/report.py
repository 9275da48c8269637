"""`report.md`: the evaluation as tables a person reads, with the PNG figures next to it.

Built only from the `metrics.json` dictionary (plus label names), so the report never shows a
number that the machine-readable file lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kefu.serving.taxonomy import HEADS
from kefu.training.evaluation.politeness import politeness_sentence
from kefu.training.evaluation.routing_tables import conversation_table, escalation_table
from kefu.training.evaluation.score_tables import (
    by_source_table,
    per_class_table,
    predicted_counts,
    public_dev_table,
    summary_table,
    uncertainty_sentence,
)

REPORT_FILE = "report.md"


def set_sections(block: Mapping[str, Any], min_support: int) -> list[str]:
    """What a test set has beyond its scores, each after a blank line: the bootstrap spread,
    the per-source table, the hand-over and conversation tables (report.md and the card)."""
    lines: list[str] = []
    spread = uncertainty_sentence(block)
    if spread:
        lines += ["", spread]
    if block.get("by_source"):
        lines += ["", *by_source_table(block, min_support)]
    if block.get("escalation"):
        lines += ["", *escalation_table(block)]
    if block.get("conversations"):
        lines += ["", *conversation_table(block)]
    if block.get("politeness"):
        lines += ["", politeness_sentence(block["politeness"])]
    return lines


def set_blocks(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, block) per test set, the lead set first: the first set's block is the top level."""
    names = list(metrics.get("test_sets") or ["test"])
    blocks = [(name, metrics if i == 0 else metrics[name]) for i, name in enumerate(names)]
    lead = metrics.get("lead", names[0])
    return sorted(blocks, key=lambda item: item[0] != lead)


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
        lines += set_sections(block, metrics.get("min_support", 1))
        for head in HEADS:
            lines += ["", f"### {name}: {head}", ""]
            if not block["model"][head]["n"]:
                why = (
                    f"no row of this set carries an {head} label the bundle knows"
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
