"""Precision and recall of `asks_for_human` on real customer messages read by hand.

`datasets/real/asks_human.tsv` (its header says how it was made) holds every message of the real
pool that matched a broad net, labelled by reading; messages outside the net count as 0, and the
file keeps their texts so this test reads nothing outside the repository. Measured when the
detector was written: 11 of 11 requests found, no false alarm among the other 348 (in-sample;
the first detector found 1, with 4 false alarms). The floors leave room for one miss and one
false alarm, no more.
"""

import csv

from support.paths import REPO_ROOT

from kefu.serving.entities import asks_for_human

GOLD = REPO_ROOT / "datasets" / "real" / "asks_human.tsv"


def gold_rows() -> list[dict[str, str]]:
    with GOLD.open(encoding="utf-8", newline="") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        return list(csv.DictReader(lines, delimiter="\t"))


def test_the_gold_set_is_what_its_header_says():
    rows = gold_rows()
    assert len(rows) == 359
    assert len({row["id"] for row in rows}) == 359
    assert {row["asks_human"] for row in rows} == {"0", "1"}
    assert sum(row["asks_human"] == "1" for row in rows) == 11
    assert all(row["text"].strip() for row in rows)
    assert all(row["note"] for row in rows if row["asks_human"] == "1")


def test_precision_and_recall_on_real_messages():
    rows = gold_rows()
    gold = [row["asks_human"] == "1" for row in rows]
    found = [asks_for_human(row["text"]) for row in rows]
    true_positives = sum(g and f for g, f in zip(gold, found, strict=True))
    precision = true_positives / max(1, sum(found))
    recall = true_positives / sum(gold)
    missed = [row["text"] for row, g, f in zip(rows, gold, found, strict=True) if g and not f]
    false_alarms = [row["text"] for row, g, f in zip(rows, gold, found, strict=True) if f and not g]
    assert precision >= 0.9, false_alarms
    assert recall >= 0.9, missed
