"""The generated part of the real-message corpus's data card.

`datasets/real/README.md` is written by hand except the block between the markers, which
`kefu data real` regenerates from the numbers `real_stats.py` computes on the committed
annotations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kefu.serving.taxonomy import HEADS, Taxonomy
from kefu.training.data.card import BEGIN, END
from kefu.training.data.real_stats import RARE, SOURCES


def render(stats: dict[str, Any], taxonomy: Taxonomy) -> str:
    rows, sources = stats["rows"], stats["by_source"]
    lines = [
        f"**{rows['total']:,} messages**: "
        + ", ".join(f"{SOURCES[s]} {sum(sources[s].values()):,}" for s in SOURCES)
        + f". Split train {rows['train']:,} / dev {rows['dev']:,} / test {rows['test']:,} "
        f"(JD sessions {stats['sessions']['train']} / {stats['sessions']['dev']} / "
        f"{stats['sessions']['test']}).",
        "",
        f"Annotators: {stats['annotators']['first_pass']} first-pass, "
        f"{stats['annotators']['second_pass']} second-pass (independent), "
        f"{stats['annotators']['adjudicators']} adjudicator. Double-annotated: "
        + ", ".join(f"{SOURCES[s]} {n:,}" for s, n in stats["double_annotated"].items())
        + f"; adjudicated after a disagreement: {stats['adjudicated']:,}.",
        "",
        "Alipay questions moved from held-out splits to train as near-duplicates of a training "
        "question: "
        + (", ".join(f"{k} {v}" for k, v in stats["moved_to_train"].items()) or "none")
        + f". JD test turns with a near-duplicate in train or dev (kept, their sessions are held "
        f"out): {stats['jd_test_near_duplicates_of_other_splits']:.1%}.",
        "",
        f"Message length in characters: p5 {stats['length']['p5']}, p25 {stats['length']['p25']}, "
        f"p50 {stats['length']['p50']}, p75 {stats['length']['p75']}, p95 {stats['length']['p95']}, "
        f"max {stats['length']['max']}.",
        "",
        "#### Agreement of the second annotation (before adjudication)",
        *agreement_table(stats["agreement"]),
        "",
        "Handing over to a person: the taxonomy's routing content rules (human requested, "
        "complaint, critical, angry, high urgency with a negative emotion) applied to each pass's "
        "labels, the second pass scored against the first as `kefu evaluate` scores a model. The "
        "sample holds every critical and angry message, so it has more hand-overs than traffic.",
        "",
        "| sample | n | hand-overs, first pass | second pass | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, block in stats["handover_agreement"].items():
        label = "all" if name == "all" else SOURCES[name]
        lines.append(
            f"| {label} | {block['n']:,} | {block['first']} | {block['second']} | "
            f"{block['precision']:.2f} | {block['recall']:.2f} | {block['f1']:.2f} |"
        )
    lines += render_reread(stats["reread"])
    lines += render_revisions(stats.get("revisions", []))
    lines += render_paraphrases(stats.get("paraphrases") or {})
    for head in HEADS:
        names = taxonomy.names(head)
        lines += [
            "",
            f"#### {head}",
            "",
            "| label | 中文 | JD | Alipay | train | dev | test | total |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, counts in stats["per_label"][head].items():
            total = counts["jddc2019"] + counts["atec"]
            lines.append(
                f"| `{label}` | {names[label]} | {counts['jddc2019']} | {counts['atec']} | "
                f"{counts['train']} | {counts['dev']} | {counts['test']} | {total} |"
            )
    rare = [
        f"`{label}` {sum(stats['per_label'][head][label][s] for s in SOURCES)}"
        for head, labels in RARE.items()
        for label in labels
    ]
    lines += ["", "Rare in real traffic (all splits): " + ", ".join(rare) + "."]
    return "\n".join(lines)


def render_reread(block: dict[str, Any]) -> list[str]:
    if not block:
        return []
    lines = [
        "",
        "#### Re-read under the current guidelines (before adjudication)",
        "",
        f"{block['agreement']['all']['intent']['n']:,} messages read again, blind, by other "
        "annotators under the current guidelines, scored against the labels they had (first "
        "pass or adjudication). "
        f"{block['disagreed']:,} differed on some head and were adjudicated again; final labels "
        "changed: " + ", ".join(f"{head} {n:,}" for head, n in block["changed"].items()) + ".",
        *agreement_table(block["agreement"]),
    ]
    return lines


def render_revisions(blocks: list[dict[str, Any]]) -> list[str]:
    if not blocks:
        return []
    lines = [
        "",
        "#### Revisions after a guideline ruling",
        "",
        "The messages a ruling may concern (found by keyword; the keywords only chose what was "
        "read) read again, blind, under it (`annotations/revisions/`); every read that differed "
        "from the labels was adjudicated.",
        "",
        "| revision | read | differed | intent changed | urgency changed | emotion changed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for block in blocks:
        changed = " | ".join(str(block["changed"][head]) for head in HEADS)
        lines.append(f"| {block['name']} | {block['read']} | {block['disagreed']} | {changed} |")
    return lines


def render_paraphrases(block: dict[str, Any]) -> list[str]:
    if not block.get("written"):
        return []
    return [
        "",
        "#### Written paraphrases of training messages",
        "",
        f"{block['written']:,} training messages rephrased by {block['writers']} writers "
        f"(`paraphrases/`), each taking its message's labels: {block['skipped']} left as `-` "
        "(no faithful rewording), "
        f"{block['near_duplicates_of_held_out']} dropped as near-duplicates of a dev or test "
        f"message, {block['kept']:,} in `train_paraphrases.jsonl` (training only).",
    ]


def agreement_table(agreement: dict[str, Any]) -> list[str]:
    """Per-source accuracy and kappa of one annotation against another, each head side by side."""
    lines = [
        "",
        "| sample | n | intent acc | intent kappa | urgency acc | urgency kappa | emotion acc | emotion kappa |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, heads in agreement.items():
        cells = [f"{heads[h]['accuracy']:.3f} | {heads[h]['kappa']:.3f}" for h in HEADS]
        label = "all" if name == "all" else SOURCES[name]
        lines.append(f"| {label} | {heads['intent']['n']:,} | " + " | ".join(cells) + " |")
    return lines


def update_real_card(card: Path, stats: dict[str, Any], taxonomy: Taxonomy) -> None:
    """Replace the generated block of the card (markers kept), or append one."""
    text = card.read_text(encoding="utf-8") if card.exists() else "# Data card\n"
    block = f"{BEGIN.replace('kefu data build', 'kefu data real')}\n\n{render(stats, taxonomy)}\n\n{END}"
    start = text.find(BEGIN.split(" (")[0])
    if start >= 0:
        end = text.index(END, start) + len(END)
        text = text[:start] + block + text[end:]
    else:
        text = text.rstrip() + "\n\n## Numbers\n" + block + "\n"
    card.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
