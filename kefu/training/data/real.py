"""Build the real-message corpus from its annotations: `kefu data real` (part of `make data`).

Usage: `build_real(RealConfig())` reads `datasets/real/`:
- `messages.tsv`: the annotated real messages (id, source, session, turn, text), as published;
- `annotations/pass1/*.tsv`: the first annotation of every message, one file per batch, named
  `<batch>.<annotator>.tsv` (id, intent, urgency, emotion, note);
- `annotations/pass2/*.tsv`: the independent second annotation of a stratified sample;
- `annotations/adjudication.<annotator>.tsv`: the third read of every disagreement;
- `annotations/reread/*.tsv`: a blind re-read, under the current guidelines, of batches first
  labelled under an older version;
- `annotations/reread-adjudication.<annotator>.tsv`: the third read of every re-read row whose
  labels differ from the labels it had before;
- `annotations/revisions/<name>/read.<annotator>.tsv` and `adjudication.<annotator>.tsv`: after
  a guideline ruling, a blind read of the messages it may concern (found by keyword: keywords
  only choose what is read) and the third read of every row whose read differs, applied in
  name order after the re-read;
- `paraphrases/<batch>.<writer>.tsv`: written paraphrases of training messages
  (`real_paraphrases.py`, output `train_paraphrases.jsonl`);
and writes `labelled.jsonl` (every message with its final labels, who gave them, whether they
were adjudicated, and its split), `train/dev/test.jsonl`, `stats.json` and the numbers section
of `README.md`, byte-identically for the same inputs.

Final labels: the adjudicated ones where a disagreement was adjudicated, else the first pass
(on the double-annotated rows that agreed, both passes say the same). A re-read that agrees
keeps those labels; one that differs must have been adjudicated again, and that decision wins;
a revision's read is handled the same way, after the re-read. The split is 70/15/15 by
a hash: of the session for JD chat turns, so every turn of a conversation sits in one split,
and of the id for the Alipay questions. An Alipay dev or test question that is a near-duplicate
(character 5-gram Jaccard >= 0.8) of a training question moves to train, so the held-out
splits measure questions the model has not seen reworded; JD turns stay with their session.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kefu.errors import DataError
from kefu.serving.taxonomy import HEADS, Taxonomy, load_taxonomy
from kefu.training.data.build import stable_hash
from kefu.training.data.corpus_row import CorpusRow
from kefu.training.data.overlap import THRESHOLD, max_jaccard

SPLITS = ("train", "dev", "test")
SHARES = {"train": 0.70, "dev": 0.15, "test": 0.15}
JD = "jddc2019"  # conversational source: split by session


@dataclass(frozen=True)
class RealConfig:
    folder: Path = Path("datasets/real")  # run from the project root, as `make data` does

    @property
    def card(self) -> Path:
        return self.folder / "README.md"


@dataclass(frozen=True)
class Annotation:
    labels: dict[str, str]  # head -> label id
    annotator: str
    file: str


@dataclass(frozen=True)
class Revision:
    """A targeted read after a guideline ruling (`annotations/revisions/<name>/`)."""

    name: str  # e.g. v6-c1: the guideline version and the entry it ruled
    read: dict[str, Annotation]
    adjudicated: dict[str, Annotation]


@dataclass
class RealRow(CorpusRow):
    session: str
    turn: int | None
    annotator: str
    adjudicated: bool
    double_annotated: bool
    reread: bool  # read again under the current guidelines (agreeing, or adjudicated again)
    revision: str = ""  # the latest revision that read it ("" = none)
    split: str = ""
    moved: str = field(default="", repr=False)  # why a row left its hash split (not written)

    def to_json(self) -> str:
        record = {key: value for key, value in asdict(self).items() if key != "moved"}
        return json.dumps(record, ensure_ascii=False, sort_keys=True)


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_annotations(files: list[Path], taxonomy: Taxonomy) -> dict[str, Annotation]:
    """id -> annotation; every label is checked against the taxonomy, errors name file and line."""
    known = {head: set(taxonomy.labels(head)) for head in HEADS}
    found: dict[str, Annotation] = {}
    for path in files:
        annotator = path.stem.split(".")[-1]
        for line, record in enumerate(read_tsv(path), start=2):
            labels = {head: (record.get(head) or "").strip() for head in HEADS}
            for head, label in labels.items():
                if label not in known[head]:
                    raise DataError(f"unknown {head} label {label!r}", str(path), line, head)
            if record["id"] in found:
                raise DataError(f"id {record['id']} annotated twice", str(path), line, "id")
            found[record["id"]] = Annotation(labels, annotator, path.name)
    return found


def final_rows(
    messages: list[dict[str, str]],
    first: dict[str, Annotation],
    second: dict[str, Annotation],
    adjudicated: dict[str, Annotation],
    reread: dict[str, Annotation] | None = None,
    readjudicated: dict[str, Annotation] | None = None,
    revisions: Sequence[Revision] = (),
) -> list[RealRow]:
    reread, readjudicated = reread or {}, readjudicated or {}
    rows = []
    for message in messages:
        if message["id"] not in first:
            continue  # not annotated (yet): not part of the corpus
        chosen = adjudicated.get(message["id"]) or first[message["id"]]
        again = reread.get(message["id"])
        if again and again.labels != chosen.labels:
            if message["id"] not in readjudicated:
                raise DataError(
                    f"re-read of {message['id']} differs from its labels and is not adjudicated",
                    again.file,
                    column="id",
                )
            chosen = readjudicated[message["id"]]
        revised, revision_adjudicated = "", False
        for revision in revisions:
            read = revision.read.get(message["id"])
            if read is None:
                continue
            revised = revision.name
            if read.labels != chosen.labels:
                if message["id"] not in revision.adjudicated:
                    raise DataError(
                        f"revision {revision.name}: read of {message['id']} differs from its "
                        "labels and is not adjudicated",
                        read.file,
                        column="id",
                    )
                chosen, revision_adjudicated = revision.adjudicated[message["id"]], True
        rows.append(
            RealRow(
                id=message["id"],
                text=message["text"],
                **chosen.labels,
                source=message["source"],
                session=message["session"],
                turn=int(message["turn"]) if message["turn"] else None,
                annotator=chosen.annotator,
                adjudicated=message["id"] in adjudicated
                or message["id"] in readjudicated
                or revision_adjudicated,
                double_annotated=message["id"] in second,
                reread=again is not None,
                revision=revised,
            )
        )
    return rows


def read_revisions(folder: Path, taxonomy: Taxonomy) -> list[Revision]:
    return [
        Revision(
            name=path.name,
            read=read_annotations(sorted(path.glob("read.*.tsv")), taxonomy),
            adjudicated=read_annotations(sorted(path.glob("adjudication.*.tsv")), taxonomy),
        )
        for path in sorted((folder / "annotations" / "revisions").glob("*"))
        if path.is_dir()
    ]


def assign_splits(rows: list[RealRow]) -> None:
    """70/15/15 by hash (session for JD), then Alipay near-duplicates of train move to train."""
    for row in rows:
        key = row.session if row.source == JD and row.session else row.id
        position = int(stable_hash("real-split", key)[:8], 16) / 0xFFFFFFFF
        row.split = "train" if position < SHARES["train"] else "dev"
        if position >= SHARES["train"] + SHARES["dev"]:
            row.split = "test"
    train_texts = [row.text for row in rows if row.split == "train"]
    for split in ("dev", "test"):
        movable = [row for row in rows if row.split == split and row.source != JD]
        scores = max_jaccard([row.text for row in movable], train_texts)
        for row, score in zip(movable, scores, strict=True):
            if score >= THRESHOLD:
                row.split, row.moved = "train", split


def build_real(config: RealConfig = RealConfig(), taxonomy: Taxonomy | None = None) -> dict:
    from kefu.training.data.real_card import update_real_card
    from kefu.training.data.real_paraphrases import build_paraphrases
    from kefu.training.data.real_stats import real_stats, revision_stats

    taxonomy = taxonomy or load_taxonomy()
    folder = config.folder
    messages = read_tsv(folder / "messages.tsv")
    first = read_annotations(sorted((folder / "annotations" / "pass1").glob("*.tsv")), taxonomy)
    second = read_annotations(sorted((folder / "annotations" / "pass2").glob("*.tsv")), taxonomy)
    adjudicated = read_annotations(
        sorted((folder / "annotations").glob("adjudication.*.tsv")), taxonomy
    )
    reread = read_annotations(sorted((folder / "annotations" / "reread").glob("*.tsv")), taxonomy)
    readjudicated = read_annotations(
        sorted((folder / "annotations").glob("reread-adjudication.*.tsv")), taxonomy
    )
    revisions = read_revisions(folder, taxonomy)
    annotated = set(first) | set(second) | set(adjudicated) | set(reread) | set(readjudicated)
    for revision in revisions:
        annotated |= set(revision.read) | set(revision.adjudicated)
    unknown = sorted(annotated - {m["id"] for m in messages})
    if unknown:
        raise DataError(f"annotations name ids not in messages.tsv: {unknown[:5]}", str(folder))
    prior = first | adjudicated  # the labels each message had before the re-read
    rows = final_rows(messages, first, second, adjudicated, reread, readjudicated, revisions)
    # each revision is scored against the labels it found (those after the revisions before it)
    before = [
        final_rows(messages, first, second, adjudicated, reread, readjudicated, revisions[:k])
        for k in range(len(revisions))
    ]
    assign_splits(rows)
    rows.sort(key=lambda row: row.id)
    (folder / "labelled.jsonl").write_text("".join(row.to_json() + "\n" for row in rows), "utf-8")
    for split in SPLITS:
        (folder / f"{split}.jsonl").write_text(
            "".join(row.to_json() + "\n" for row in rows if row.split == split), "utf-8"
        )
    stats = real_stats(rows, first, second, taxonomy, prior, reread)
    stats["revisions"] = [
        revision_stats(revision, earlier, rows)
        for revision, earlier in zip(revisions, before, strict=True)
    ]
    stats["paraphrases"] = build_paraphrases(folder, rows)
    (folder / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2) + "\n")
    update_real_card(config.card, stats, taxonomy)
    return stats
