"""Numbers of the real-message corpus: counts per label, source and split, and agreement.

The agreement of the independent second annotation (accuracy and Cohen's kappa, and whether the
two passes' labels hand the same messages to a person), how far a blind re-read under the
current guidelines agrees with labels given under an older version, and what each revision after
a guideline ruling read and changed. `real_card.py` renders them into the data card.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from kefu.serving.routing import Action, choose_action
from kefu.serving.routing_policy import RoutingPolicy
from kefu.serving.taxonomy import HEADS, Taxonomy
from kefu.training.data.overlap import THRESHOLD, max_jaccard
from kefu.training.evaluation.escalation import gold_reasons

if TYPE_CHECKING:  # real.py imports this module when it writes the data card
    from kefu.training.data.real import Annotation

SPLITS = ("train", "dev", "test")
SOURCES = {"jddc2019": "JD chat turns", "atec": "Alipay questions"}
RARE = {"intent": ("counterfeit", "human_agent"), "urgency": ("critical",), "emotion": ("angry",)}


def agreement(first: dict, second: dict, ids: list[str]) -> dict[str, dict[str, float]]:
    """Per head: share of identical labels and Cohen's kappa, first vs second annotation."""
    out = {}
    for head in HEADS:
        if not ids:  # no second annotation yet
            out[head] = {"n": 0, "accuracy": 0.0, "kappa": 0.0}
            continue
        a = [first[i].labels[head] for i in ids]
        b = [second[i].labels[head] for i in ids]
        out[head] = {
            "n": len(ids),
            "accuracy": round(float(np.mean([x == y for x, y in zip(a, b, strict=True)])), 4),
            "kappa": round(float(np.nan_to_num(cohen_kappa_score(a, b), nan=1.0)), 4),
        }
    return out


def handover_agreement(
    first: dict, second: dict, texts: dict[str, str], ids: list[str], taxonomy: Taxonomy
) -> dict[str, Any]:
    """The second pass's hand-overs scored against the first's, as `kefu evaluate` scores a model.

    Both label sets go through the taxonomy's default routing content rules; the result is the
    human reference for the escalation targets: how far two careful readers agree on who needs a
    person.
    """
    policy = RoutingPolicy.for_taxonomy(taxonomy)

    def human(annotation: Annotation, text: str) -> bool:
        return choose_action(gold_reasons(annotation.labels, text, policy)) == Action.HUMAN

    pairs = [(human(first[i], texts[i]), human(second[i], texts[i])) for i in ids]
    both = sum(a and b for a, b in pairs)
    first_n, second_n = sum(a for a, _ in pairs), sum(b for _, b in pairs)
    precision = both / second_n if second_n else 0.0
    recall = both / first_n if first_n else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": len(ids),
        "first": first_n,
        "second": second_n,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def reread_stats(rows: list, prior: dict, reread: dict) -> dict[str, Any]:
    """The re-read against the labels before it, and how many final labels it changed per head."""
    by_id = {row.id: row for row in rows}
    ids = sorted(i for i in reread if i in by_id)
    if not ids:
        return {}
    return {
        "agreement": {"all": agreement(prior, reread, ids)}
        | {
            source: agreement(prior, reread, subset)
            for source in SOURCES
            if (subset := [i for i in ids if by_id[i].source == source])
        },
        "disagreed": sum(prior[i].labels != reread[i].labels for i in ids),
        "changed": {
            head: sum(getattr(by_id[i], head) != prior[i].labels[head] for i in ids)
            for head in HEADS
        },
    }


def revision_stats(revision: Any, before: list, after: list) -> dict[str, Any]:
    """A revision's read against the labels it found, and the final labels it changed."""
    found = {row.id: row for row in before}
    final = {row.id: row for row in after}
    ids = sorted(revision.read)
    return {
        "name": revision.name,
        "read": len(ids),
        "disagreed": sum(
            any(revision.read[i].labels[head] != getattr(found[i], head) for head in HEADS)
            for i in ids
        ),
        "changed": {
            head: sum(getattr(final[i], head) != getattr(found[i], head) for i in ids)
            for head in HEADS
        },
    }


def real_stats(
    rows: list,
    first: dict,
    second: dict,
    taxonomy: Taxonomy,
    prior: dict | None = None,
    reread: dict | None = None,
) -> dict[str, Any]:
    by_id = {row.id: row for row in rows}
    double = sorted(i for i in second if i in by_id)
    texts = {row.id: row.text for row in rows}
    lengths = np.array([len(row.text) for row in rows])
    jd_test = [r.text for r in rows if r.split == "test" and r.source == "jddc2019"]
    earlier = [r.text for r in rows if r.split != "test"]
    return {
        "rows": {split: sum(r.split == split for r in rows) for split in SPLITS}
        | {"total": len(rows)},
        "by_source": {
            source: {
                split: sum(r.split == split and r.source == source for r in rows)
                for split in SPLITS
            }
            for source in SOURCES
        },
        "sessions": {
            split: len({r.session for r in rows if r.split == split and r.source == "jddc2019"})
            for split in SPLITS
        },
        "annotators": {
            "first_pass": len({a.annotator for a in first.values()}),
            "second_pass": len({a.annotator for a in second.values()}),
            "adjudicators": len({r.annotator for r in rows if r.adjudicated}),
        },
        "double_annotated": {
            source: sum(by_id[i].source == source for i in double) for source in SOURCES
        },
        "adjudicated": sum(r.adjudicated for r in rows),
        "agreement": {"all": agreement(first, second, double)}
        | {
            source: agreement(first, second, [i for i in double if by_id[i].source == source])
            for source in SOURCES
        },
        "handover_agreement": {
            name: handover_agreement(first, second, texts, subset, taxonomy)
            for name, subset in [("all", double)]
            + [(source, [i for i in double if by_id[i].source == source]) for source in SOURCES]
        },
        "reread": reread_stats(rows, prior or {}, reread or {}),
        "moved_to_train": dict(sorted(Counter(r.moved for r in rows if r.moved).items())),
        "jd_test_near_duplicates_of_other_splits": round(
            float((max_jaccard(jd_test, earlier) >= THRESHOLD).mean()) if jd_test else 0.0, 4
        ),
        "length": {f"p{q}": int(np.percentile(lengths, q)) for q in (5, 25, 50, 75, 95)}
        | {"max": int(lengths.max())},
        "per_label": {
            head: {
                label: {
                    source: sum(getattr(r, head) == label and r.source == source for r in rows)
                    for source in SOURCES
                }
                | {
                    split: sum(getattr(r, head) == label and r.split == split for r in rows)
                    for split in SPLITS
                }
                for label in taxonomy.labels(head)
            }
            for head in HEADS
        },
    }
