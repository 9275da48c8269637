"""Written paraphrases of real training messages: more text in the real register, same labels.

Writers read the taxonomy and the guidelines, then rewrote real *training* messages the way
another customer could have typed them, keeping every cue that decides a label (topic,
deadline or money at stake, emotion markers) and adding none; `-` marks a message they could
not rephrase faithfully. Files: `paraphrases/<batch>.<writer>.tsv` (`source_id`, `text`).

A paraphrase takes the final labels of the message it rephrases, so a later adjudication or
revision of that message carries over. Only training messages may be rephrased (a paraphrase
of a dev or test message would leak it); one that is still a near-duplicate of a dev or test
message (the same 5-gram Jaccard test as the splits) is dropped. Output: `train_paraphrases.jsonl`,
a training file beside `train.jsonl` (never a dev or test split).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kefu.errors import DataError
from kefu.training.data.overlap import THRESHOLD, max_jaccard
from kefu.training.data.real import read_tsv

OUTPUT = "train_paraphrases.jsonl"
SKIP = "-"


def build_paraphrases(folder: Path, rows: list) -> dict[str, Any]:
    """Write `train_paraphrases.jsonl` from `paraphrases/*.tsv`; returns the counts for the card."""
    by_id = {row.id: row for row in rows}
    held_out = [row.text for row in rows if row.split != "train"]
    written: list[dict[str, Any]] = []
    skipped = 0
    files = sorted((folder / "paraphrases").glob("*.tsv"))
    for path in files:
        writer = path.stem.split(".")[-1]
        for line, record in enumerate(read_tsv(path), start=2):
            source_id, text = record.get("source_id") or "", (record.get("text") or "").strip()
            source = by_id.get(source_id)
            if source is None or source.split != "train":
                where = "not a real message" if source is None else f"in the {source.split} split"
                raise DataError(
                    f"paraphrase of {source_id!r}: {where}; only training messages may be "
                    "rephrased",
                    str(path),
                    line,
                    "source_id",
                )
            if text in ("", SKIP):
                skipped += 1
                continue
            written.append(
                {
                    "id": f"{source_id}.{writer}",
                    "text": text,
                    "intent": source.intent,
                    "urgency": source.urgency,
                    "emotion": source.emotion,
                    "source": source.source,
                    "paraphrase_of": source_id,
                    "writer": writer,
                }
            )
    scores = max_jaccard([row["text"] for row in written], held_out)
    kept = [row for row, score in zip(written, scores, strict=True) if score < THRESHOLD]
    (folder / OUTPUT).write_text(
        "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in kept),
        "utf-8",
    )
    return {
        "writers": len({path.stem.split(".")[-1] for path in files}),
        "written": len(written) + skipped,
        "skipped": skipped,
        "near_duplicates_of_held_out": len(written) - len(kept),
        "kept": len(kept),
    }
