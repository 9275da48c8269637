"""Chat-log files for the batch and report tests (helpers only, no tests here).

`chat_log(n)` gives `n` rows with unique ids, timestamps spread over days, and a known set of
bad rows; `write_jsonl`, `write_csv`, `write_parquet` put rows in real files.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from support.paths import SAMPLE_TEXTS

MESSAGES = [
    *SAMPLE_TEXTS,
    "衣服尺码偏小能换大一号吗",
    "优惠券怎么用不了",
    "账号被冻结了怎么办",
]
# Every BAD_EVERY-th row, starting at offset k, is bad in way k (JSONL): empty, whitespace,
# a number, null, a missing key.
BAD_EVERY = 50
BAD_KINDS = ("empty_text", "empty_text", "not_text", "missing_text", "missing_text")


def chat_log(n: int, seed: int = 0, bad: bool = True) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        text: Any = f"{rng.choice(MESSAGES)} {rng.randint(0, 999)}"
        kind = i % BAD_EVERY
        if bad and kind < len(BAD_KINDS):
            text = ["", "   ", 12345, None, "__missing__"][kind]
        row = {
            "msg_id": f"m{i:06d}",
            "shop": rng.choice(["旗舰店", "专营店"]),
            "created_at": f"2024-03-{1 + i % 20:02d} 09:{i % 60:02d}:00",
        }
        if text != "__missing__":
            row["text"] = text
        rows.append(row)
    return rows


def expected_bad(n: int) -> int:
    return sum(1 for i in range(n) if i % BAD_EVERY < len(BAD_KINDS))


def write_jsonl(rows: list[dict[str, Any]], path: Path, extra_lines: list[bytes] = ()) -> Path:
    with path.open("wb") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        for line in extra_lines:
            handle.write(line + b"\n")
    return path


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    clean = [
        {**row, "text": row.get("text") if isinstance(row.get("text"), str) else None}
        for row in rows
    ]
    pq.write_table(pa.Table.from_pylist(clean), path)
    return path
