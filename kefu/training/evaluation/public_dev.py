"""Evaluation on public real-text dev sets (a folder given by --public-dev or KEFU_PUBLIC_DEV).

They tell how well a model trained on our own labelled data transfers to text nobody here
wrote. Evaluation only: they are never trained on, never used to tune, never copied into the
repository. Their labels are coarser than ours, so each set is scored on a mapped task:

- JD customer messages: chit-chat (predicted intent greeting/other) vs business (any other
  intent); plus how often `human_agent` is predicted for messages that contain 人工.
- waimai and ChnSentiCorp reviews: polarity, positive vs negative (dissatisfied, angry or
  anxious); a `neutral` prediction counts as a miss and its share is reported on its own.
- SMP2020-EWECT Weibo posts: five-way emotion (angry, fear->anxious, happy->positive, neutral,
  sad->dissatisfied); surprise has no counterpart and is dropped.

Every file is read through the project's one tabular reader (`kefu.tabular`), so quoting, line
breaks in a review, broken records and the Weibo file's one JSON array are handled as for any
input file.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kefu.errors import DataError
from kefu.serving.deployment import Deployment
from kefu.serving.taxonomy import load_taxonomy
from kefu.tabular import ReadOptions, read_columns, read_records, table_file
from kefu.tabular.values import SURROGATE
from kefu.training.evaluation.inference import run_deployment
from kefu.training.evaluation.metrics import scores_from_confusion

SAMPLE_SEED = 0
# Default rows per set: every JD message (the set closest to production, 2.1k short rows) and a
# seeded 1,000-row sample of the review and Weibo sets, so the whole public evaluation takes about
# two minutes on 2 busy cores with the real model (all 26k rows take over 6). 1,000 rows put the
# standard error of an accuracy near 1.5 points: enough to see a trend between models.
PER_SET_DEFAULTS = -1  # the `limit` that means "use DEFAULT_LIMITS"
DEFAULT_LIMITS: dict[str, int | None] = {
    "jd_chat_vs_business": None,
    "waimai": 1000,
    "chnsenticorp_hotel": 1000,
    "smp2020_weibo": 1000,
}

CHITCHAT_INTENTS = frozenset({"greeting", "other"})
NEGATIVE_EMOTIONS = frozenset({"dissatisfied", "angry", "anxious"})
SMP_EMOTIONS = {
    "angry": "angry",
    "fear": "anxious",
    "happy": "positive",
    "neutral": "neutral",
    "sad": "dissatisfied",
}
ASKS_HUMAN_MARKER = "人工"
# The public files are published as UTF-8: read as such (a byte-order mark is dropped), so a copy
# re-saved in another encoding stops the run naming the file instead of being decoded as GB18030.
# `kefu evaluate --encoding` is for the test files, not these: a header that does not decode
# says what the user can do.
UTF8_FIX = "the public dev files are published as UTF-8: save this one as UTF-8 again"
READ_OPTIONS = ReadOptions(encoding="utf-8", encoding_fix=UTF8_FIX)


@dataclass
class PublicSet:
    """Texts and gold labels of one public set, already mapped to the set's scoring task."""

    name: str
    file: str
    task: str  # "chitchat_vs_business", "polarity" or "emotion5"
    texts: list[str]
    gold: list[str]
    dropped: int = 0  # rows without text, with an unmappable label, or not read cleanly
    total: int | None = None  # usable rows in the file when `texts` is a sample of them


def read_jd(path: Path) -> PublicSet:
    """`train`+`test` sheets, deduplicated by text (`Sheet2` mostly re-labels `train`)."""
    rows, dropped = _read_table(path, columns=("sheet", "label_chitchat", "text"))
    texts, gold, seen = [], [], set()
    for row in rows:
        text = (row["text"] or "").strip()
        if row["sheet"] not in ("train", "test"):
            continue
        if not text or text in seen or row["label_chitchat"] not in ("0", "1"):
            dropped += 1
            continue
        seen.add(text)
        texts.append(text)
        gold.append("chitchat" if row["label_chitchat"] == "1" else "business")
    return PublicSet("jd_chat_vs_business", path.name, "chitchat_vs_business", texts, gold, dropped)


def read_review_polarity(path: Path, name: str) -> PublicSet:
    """waimai_10k / ChnSentiCorp layout: `label` (1 positive, 0 negative), `review`."""
    rows, dropped = _read_table(path, columns=("label", "review"))
    texts, gold = [], []
    for row in rows:
        text = (row["review"] or "").strip()
        if not text or row["label"] not in ("0", "1"):
            dropped += 1
            continue
        texts.append(text)
        gold.append("positive" if row["label"] == "1" else "negative")
    return PublicSet(name, path.name, "polarity", texts, gold, dropped)


def read_smp(path: Path) -> PublicSet:
    """A JSON array of {"id", "content", "label"}; surprise is dropped (no counterpart)."""
    rows, dropped = _read_table(path, columns=("content", "label"))
    texts, gold = [], []
    for row in rows:
        content, label = row.get("content"), row.get("label")
        text = content.strip() if isinstance(content, str) else ""
        if not text or not isinstance(label, str) or label not in SMP_EMOTIONS:
            dropped += 1
            continue
        texts.append(text)
        gold.append(SMP_EMOTIONS[label])
    return PublicSet("smp2020_weibo", path.name, "emotion5", texts, gold, dropped)


# what a usable row's label is, per file, for the error when no row is usable
KNOWN_LABELS = {
    "jd_chat_vs_business.tsv": "label_chitchat 0 or 1, in the train or test sheet",
    "waimai_10k.csv": "label 0 or 1",
    "ChnSentiCorp_htl_all.csv": "label 0 or 1",
    "smp2020_ewect_usual_test.json": f"label one of {', '.join(sorted(SMP_EMOTIONS))}",
}
READERS: dict[str, Callable[[Path], PublicSet]] = {
    "jd_chat_vs_business.tsv": read_jd,
    "waimai_10k.csv": lambda path: read_review_polarity(path, "waimai"),
    "ChnSentiCorp_htl_all.csv": lambda path: read_review_polarity(path, "chnsenticorp_hotel"),
    "smp2020_ewect_usual_test.json": read_smp,
}


def load_public_sets(folder: Path, limit: int | None = PER_SET_DEFAULTS) -> list[PublicSet]:
    """Every known file present in `folder`, capped by a seeded sample of rows.

    `limit`: rows per set; None means all rows of every set, PER_SET_DEFAULTS the DEFAULT_LIMITS.
    A sample, not the first rows: the review files are sorted by label.

    Each file is read whole here (under a second for all four), so `kefu evaluate` calls this
    before any model work: a known name that is no readable file (a folder, a broken link), a
    file that does not parse, or one without a usable row raises a DataError naming it, instead
    of a traceback or a set of null scores once the test sets have been scored.
    """
    sets = []
    for name, reader in READERS.items():
        path = folder / name
        if not path.exists() and not path.is_symlink():
            continue  # a folder may hold some of the sets
        if not path.is_file():
            found = "a link to nothing" if not path.exists() else "no regular file"
            raise DataError(f"expected a readable {name} file, found {found}", file=str(path))
        public_set = reader(path)
        if not public_set.texts:
            raise DataError(
                f"no usable row: a row needs a text and {KNOWN_LABELS[name]} "
                f"({public_set.dropped} rows dropped)",
                file=str(path),
            )
        sets.append(public_set)
    for public_set in sets:
        cap = DEFAULT_LIMITS.get(public_set.name) if limit == PER_SET_DEFAULTS else limit
        if cap is not None:
            _sample(public_set, cap)
    return sets


def evaluate_public_sets(
    deployment: Deployment, sets: list[PublicSet]
) -> dict[str, dict[str, Any]]:
    """Scores per set name; see the module docstring for what each task measures."""
    labels = deployment.bundle.labels
    results = {}
    for public_set in sets:
        outputs = run_deployment(deployment, public_set.texts)
        intents = [labels["intent"][i] for i in outputs["intent"].predicted]
        emotions = [labels["emotion"][i] for i in outputs["emotion"].predicted]
        results[public_set.name] = score_public_set(public_set, intents, emotions)
    return results


def score_public_set(
    public_set: PublicSet, intents: list[str], emotions: list[str]
) -> dict[str, Any]:
    """Score predicted intent and emotion ids (one per text) on the set's mapped task."""
    if public_set.task == "chitchat_vs_business":
        result = _score_chitchat(public_set, intents)
    elif public_set.task == "polarity":
        result = _score_polarity(public_set, emotions)
    else:
        result = _score_emotion5(public_set, emotions)
    head = {
        "file": public_set.file,
        "task": public_set.task,
        "n": len(public_set.texts),
        "rows_in_file": public_set.total or len(public_set.texts),
        "dropped": public_set.dropped,
    }
    return head | result


def _score_chitchat(public_set: PublicSet, intents: list[str]) -> dict[str, Any]:
    predicted = ["chitchat" if intent in CHITCHAT_INTENTS else "business" for intent in intents]
    result = _scores(public_set.gold, predicted, ("chitchat", "business"))
    asks_human = [i for i, text in enumerate(public_set.texts) if ASKS_HUMAN_MARKER in text]
    result["asks_human_rows"] = len(asks_human)
    result["human_agent_share_on_asks_human"] = (
        sum(intents[i] == "human_agent" for i in asks_human) / len(asks_human)
        if asks_human
        else None
    )
    result["predicted_intents"] = _shares(intents)
    return result


def _score_polarity(public_set: PublicSet, emotions: list[str]) -> dict[str, Any]:
    predicted = [
        "positive" if e == "positive" else "negative" if e in NEGATIVE_EMOTIONS else "neutral"
        for e in emotions
    ]
    # Scored over the two gold classes only: a neutral prediction is a miss for its gold class.
    result = _scores(
        public_set.gold,
        predicted,
        ("positive", "negative", "neutral"),
        scored=("positive", "negative"),
    )
    answered = [i for i, p in enumerate(predicted) if p != "neutral"]
    result["neutral_share"] = 1 - len(answered) / len(predicted) if predicted else None
    result["accuracy_non_neutral"] = (
        sum(predicted[i] == public_set.gold[i] for i in answered) / len(answered)
        if answered
        else None
    )
    result["predicted_emotions"] = _shares(emotions)
    return result


def _score_emotion5(public_set: PublicSet, emotions: list[str]) -> dict[str, Any]:
    result = _scores(public_set.gold, emotions, load_taxonomy().labels("emotion"))
    result["predicted_emotions"] = _shares(emotions)
    return result


def _scores(
    gold: list[str],
    predicted: list[str],
    labels: tuple[str, ...],
    scored: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    position = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, predicted, strict=True):
        matrix[position[g], position[p]] += 1
    scores = scores_from_confusion(matrix, labels)
    kept = scored or labels
    macro_f1 = (
        scores.macro_f1
        if scored is None
        else float(np.mean([scores.per_class[x].f1 for x in kept]))
    )
    return {
        "accuracy": scores.accuracy,
        "macro_f1": macro_f1,
        "per_class": {label: scores.per_class[label].as_dict() for label in kept},
        "confusion": {"labels": list(labels), "matrix": matrix.tolist()},
    }


def _shares(values: list[str]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return {
        key: count / len(values) for key, count in sorted(counts.items(), key=lambda kv: -kv[1])
    }


def _sample(public_set: PublicSet, limit: int) -> None:
    """Keep a seeded sample of `limit` rows in file order (the same rows on every run)."""
    if len(public_set.texts) <= limit:
        return
    public_set.total = len(public_set.texts)
    keep = sorted(random.Random(SAMPLE_SEED).sample(range(len(public_set.texts)), limit))
    public_set.texts = [public_set.texts[i] for i in keep]
    public_set.gold = [public_set.gold[i] for i in keep]


def _read_table(path: Path, columns: tuple[str, ...]) -> tuple[list[dict[str, Any]], int]:
    """The clean records of a file, and how many were not clean.

    A record the reader rejects (a quote that never closes, a wrong number of fields, a record
    over the length limits, an element of a JSON array that is not JSON or no object) is
    counted as a dropped row: its fields may be shifted, so neither its text nor its label can
    be trusted. A byte that is not UTF-8 anywhere stops the file.
    """
    file = table_file(path)
    found = read_columns(file, READ_OPTIONS)
    missing = set(columns) - set(found or ())
    if missing:
        raise DataError(
            f"expected columns {list(columns)}, found "
            f"{found if found is not None else 'none (no header row or JSON object)'}",
            file=str(path),
            column=sorted(missing)[0],
        )
    rows, not_clean = [], 0
    for record in read_records(file, READ_OPTIONS):
        values = record.values or {}
        for name, value in values.items():
            if isinstance(value, str) and (bad := SURROGATE.search(value)):
                raise DataError(
                    f"expected UTF-8 text, found the byte 0x{ord(bad.group()) - 0xDC00:02x}, "
                    "which is not UTF-8; save the file as UTF-8",
                    file=str(path),
                    line=record.line,
                    unit=record.unit,
                    column=name,
                )
        if record.problem is not None:
            not_clean += 1
            continue
        rows.append(values)
    return rows, not_clean
