"""Train / dev / test splits of a user's labelled file, made the way the real corpus's are.

Usage: `split_labelled(data, session_column="chat_id")` then `write_splits(split, Path("my"))`.

A row's split is decided by a hash of its group, not by shuffling: the turns of one
conversation (`session_column`) share a group, and so do rows with the same text, so no chat
and no repeated message sits on both sides of an evaluation, and adding rows later moves no row
already placed. A dev or test row outside a conversation whose text nearly repeats a training
text (character 5-gram Jaccard >= 0.8) then moves to train, as in `kefu data real`: held-out
rows measure messages the model has not seen reworded. The files are written in kefu's own
JSONL columns (`id`, `text`, `intent`, `urgency`, `emotion`; null where a head is unlabelled;
`session` with a session column, `turn` with a turn column), so `kefu train --data-dir DIR` and `kefu evaluate --data
DIR/test.jsonl` need no column options, and evaluation reads each chat as one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kefu.errors import DataError, InputError
from kefu.serving.batch.sessions import turn_number
from kefu.serving.taxonomy import HEADS
from kefu.tabular.output import replacing
from kefu.tabular.rejects import Reject
from kefu.training.data.loader import LabelledData, LabelledRow, write_rejects
from kefu.training.data.overlap import THRESHOLD, max_jaccard
from kefu.training.data.repeats import fold_text

SPLITS = ("train", "dev", "test")
DEFAULT_SHARES = (0.70, 0.15, 0.15)


@dataclass
class Split:
    rows: dict[str, list[LabelledRow]]  # split name -> its rows, in file order
    session_column: str | None
    turn_column: str | None = None  # written as `turn`, the column evaluation orders a chat by
    moved: Counter[str] = field(default_factory=Counter)  # split -> near-duplicates moved to train
    groups: dict[str, int] = field(default_factory=dict)  # split -> conversations (with sessions)

    def absent(self, split: str) -> dict[str, list[str]]:
        """Per head, the labels train has and `split` does not: not measured there."""
        missing = {}
        for head in HEADS:
            trained = {label for row in self.rows["train"] if (label := row.labels[head])}
            held = {row.labels[head] for row in self.rows[split]}
            if absent := sorted(trained - held):
                missing[head] = absent
        return missing


def parse_shares(text: str) -> tuple[float, float, float]:
    """'0.7,0.15,0.15' (or 70,15,15) as three shares summing to 1; InputError naming --shares."""
    try:
        values = [float(part) for part in text.replace("/", ",").split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or any(value < 0 for value in values) or sum(values) <= 0:
        raise InputError(
            f"--shares {text!r} is not three non-negative numbers for train, dev and test, "
            "e.g. 0.7,0.15,0.15 or 80,10,10",
            "--shares",
        )
    total = sum(values)
    if values[0] == 0:
        raise InputError(f"--shares {text!r} leaves nothing to train on", "--shares")
    return values[0] / total, values[1] / total, values[2] / total


def split_labelled(
    data: LabelledData,
    *,
    session_column: str | None = None,
    turn_column: str | None = None,
    shares: tuple[float, float, float] = DEFAULT_SHARES,
    seed: int = 13,
) -> Split:
    for kind, column in (("session", session_column), ("turn", turn_column)):
        if column is not None and column not in data.columns_found:
            raise DataError(
                f"{kind} column {column!r} is missing; found columns "
                f"{data.columns_found}; name it with --{kind}-col",
                file=data.source,
                column=column,
            )
    rows: dict[str, list[LabelledRow]] = {name: [] for name in SPLITS}
    sessions: dict[str, set[str]] = {name: set() for name in SPLITS}
    for row in data.rows:
        session = _session(row, session_column)
        key = f"session\t{session}" if session else f"text\t{fold_text(row.text)}"
        position = int(hashlib.sha256(f"{seed}\t{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        name = "train" if position < shares[0] else "dev"
        if position >= shares[0] + shares[1]:
            name = "test"
        rows[name].append(row)
        if session:
            sessions[name].add(session)
    split = Split(
        rows, session_column, turn_column, groups={name: len(sessions[name]) for name in SPLITS}
    )
    _move_near_duplicates(split)
    return split


def write_splits(split: Split, folder: Path, rejects: list[Reject]) -> dict[str, Path]:
    """DIR/train.jsonl, dev.jsonl, test.jsonl (and rejects.jsonl when a row was rejected)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in SPLITS:
        path = folder / f"{name}.jsonl"
        lines = "".join(_line(row, split) + "\n" for row in split.rows[name])
        with replacing(path) as tmp:
            tmp.write_text(lines, "utf-8")
        written[name] = path
    if rejects:
        written["rejects"] = folder / "rejects.jsonl"
        write_rejects(rejects, written["rejects"])
    return written


def _move_near_duplicates(split: Split) -> None:
    train_texts = [row.text for row in split.rows["train"]]
    for name in ("dev", "test"):
        movable = [row for row in split.rows[name] if not _session(row, split.session_column)]
        scores = max_jaccard([row.text for row in movable], train_texts)
        moving = {id(row) for row, score in zip(movable, scores, strict=True) if score >= THRESHOLD}
        if moving:
            split.rows["train"] += [row for row in split.rows[name] if id(row) in moving]
            split.rows[name] = [row for row in split.rows[name] if id(row) not in moving]
            split.moved[name] = len(moving)
    split.rows["train"].sort(key=lambda row: row.line)


def _session(row: LabelledRow, column: str | None) -> str:
    value = row.extra.get(column) if column is not None else None
    return "" if value is None or value != value else str(value).strip()  # NaN: no session


def _line(row: LabelledRow, split: Split) -> str:
    record: dict[str, Any] = {"id": row.id, "text": row.text}
    record |= {head: row.labels[head] for head in HEADS}
    if split.session_column is not None:  # the column kefu evaluate groups a chat's turns by
        record["session"] = _session(row, split.session_column) or None
    if split.turn_column is not None:  # and the one it orders them by
        record["turn"] = turn_number(row.extra.get(split.turn_column))  # None: unreadable
    record |= {
        name: value
        for name, value in row.extra.items()
        if name not in record and not (isinstance(value, float) and value != value)
    }
    return json.dumps(record, ensure_ascii=False, default=str)
