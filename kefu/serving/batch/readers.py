"""Chunks of one input file: rows to score plus rejects, cut by `kefu.tabular.read_blocks`.

A chunk is the unit of scoring and of commit. Chunks never span two files and are cut the same
way on every run over the same file, which is what lets `--resume` skip committed chunks by
count. A row whose text cannot be scored is never dropped: it leaves the chunk as a reject
(`kefu.tabular.Reject`: file, line, end_line, id, column, reason, detail).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from kefu.serving.batch.job import ReadCounts
from kefu.serving.batch.sources import INTERNAL_PREFIX
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS
from kefu.serving.preview import preview
from kefu.tabular import (
    DEFAULT_OPTIONS,
    Block,
    ReadOptions,
    Reject,
    TableFile,
    as_text,
    json_safe,
    read_blocks,
    text_problem,
)


@dataclass
class Chunk:
    index: int  # position of this chunk among all chunks of the run (file order, then row order)
    table: pa.Table  # input columns of the rows to score, rejected rows removed
    texts: list[str]  # the text of each row of `table`, same order
    rejects: list[dict[str, Any]]  # `Reject.to_dict()`s
    counts: ReadCounts  # rows (len(texts) + len(rejects)) and the input lines they came from

    @property
    def file(self) -> str:
        return self.counts.file

    @property
    def rows_read(self) -> int:
        return self.counts.rows


def read_chunks(
    source: TableFile,
    *,
    text_col: str,
    id_col: str | None,
    chunk_size: int,
    options: ReadOptions = DEFAULT_OPTIONS,
    first_index: int = 0,
    skip: int = 0,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> Iterator[Chunk]:
    """Chunks of one file, numbered from `first_index`; the first `skip` are counted, not built."""
    for number, block in enumerate(read_blocks(source, chunk_size, options=options)):
        if number < skip:
            continue
        yield _build_chunk(first_index + number, block, text_col, id_col, max_text_chars)


def count_chunks(source: TableFile, chunk_size: int, options: ReadOptions = DEFAULT_OPTIONS) -> int:
    """How many chunks a file yields (reads it once; used to skip whole committed files)."""
    return sum(1 for _ in read_blocks(source, chunk_size, options=options))


def _build_chunk(
    index: int, block: Block, text_col: str, id_col: str | None, max_text_chars: int
) -> Chunk:
    """Split a block into rows to score (a table plus their texts) and rejects."""
    file = block.file.display_name
    text_values = block.column(text_col)
    id_values = block.column(id_col)
    keep: list[int] = []
    texts: list[str] = []
    rejects: list[dict[str, Any]] = []
    for i, record in enumerate(block.records):
        problem = (
            record.problem
            or reserved_key(record.values)
            or text_problem(text_values[i], block.encoding or "utf-8", max_text_chars)
        )
        if problem is None:
            keep.append(i)
            texts.append(as_text(text_values[i]))
            continue
        column = text_col if problem[0] in TEXT_REASONS else None
        reject = Reject.of(file, record, json_safe(id_values[i]), column, *problem)
        rejects.append(reject.to_dict())
    counts = ReadCounts(file, len(block), block.lines, block.record_lines, block.multiline_records)
    return Chunk(index, block.take(keep), texts, rejects, counts)


# rejects that are the text column's fault (the others are the whole record's)
TEXT_REASONS = frozenset(
    {"missing_text", "not_text", "empty_text", "undecodable_text", "text_too_long"}
)


def reserved_key(values: dict[str, Any] | None) -> tuple[str, str] | None:
    """A JSONL record past the first ones (whose keys `check_input` refuses up front) may still
    carry a key the engines use in flight; scored, it would be dropped or take over a column."""
    for key in values or ():
        if isinstance(key, str) and key.startswith(INTERNAL_PREFIX):
            return (
                "reserved_column",
                f"key {preview(key)} starts with {INTERNAL_PREFIX!r} (reserved)",
            )
    return None
