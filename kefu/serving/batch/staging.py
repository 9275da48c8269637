"""Chunk-by-chunk commits next to the output, so a killed run resumes without loss or repeats.

Layout of `OUTPUT.partial/`:
    state.json             the commit log: how many chunks are committed and their row counts
    part-00000012.parquet  scored rows of chunk 12 (absent when every row was rejected)
    rejects-00000012.jsonl rejected rows of chunk 12 (absent when there were none)

A chunk is committed in this order: part file, rejects file (each written to a temp name,
fsynced and renamed), then `state.json` (same). A kill before the state rename leaves files
that the next run overwrites, because `state.json` still says the chunk is not committed; a kill
after it loses nothing. A write that fails (a full disk) removes its temp file and raises an
`OutputError` naming the file; the commit log still says where to resume. `state.json` also records a fingerprint of the inputs, the bundle and
the options: `--resume` refuses to continue a run whose inputs, model or kefu version have changed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kefu.errors import ConfigError
from kefu.serving.batch.job import ReadCounts, Summary, tally
from kefu.tabular.output import replacing

STATE = "state.json"
RESUME_HINT = "rerun the same command with --resume (committed chunks are kept)"
STATE_VERSION = 3  # 2: per-file row counts; 3: input line counts


@dataclass
class RunState:
    fingerprint: dict[str, Any]
    committed_chunks: int = 0
    rows_read: int = 0
    scored: int = 0
    rejected: int = 0
    lines_read: int = 0
    record_lines: int = 0
    multiline_rows: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    file_rows: dict[str, list[int]] = field(default_factory=dict)  # file -> [rows read, scored]
    file_chunks: list[int] = field(
        default_factory=list
    )  # chunk count of each input read to the end
    phase: str = "scoring"  # "scoring" -> "finalising" once every chunk is committed
    # each input as the first run named it: a resume that spells a file another way (absolute,
    # then relative) still names it one way in rejects and per-file counts
    input_names: list[str] = field(default_factory=list)
    version: int = STATE_VERSION

    def summary(self) -> Summary:
        return Summary(
            rows_read=self.rows_read,
            scored=self.scored,
            rejected=self.rejected,
            lines_read=self.lines_read,
            record_lines=self.record_lines,
            multiline_rows=self.multiline_rows,
            rejected_by_reason=Counter(self.rejected_by_reason),
            file_rows={file: list(counts) for file, counts in self.file_rows.items()},
            resumed_from_chunk=self.committed_chunks,
        )


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename: readers see the old file or the new one, never half of one."""
    with replacing(path, RESUME_HINT) as tmp, tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class Staging:
    def __init__(self, directory: Path):
        self.directory = directory
        self.state_path = directory / STATE

    def open(
        self,
        fingerprint: dict[str, Any],
        *,
        resume: bool,
        fresh: bool,
        input_names: list[str] | None = None,
    ) -> RunState:
        """The state to continue from: a new run, or (with `resume`) the interrupted one."""
        if fresh and self.directory.exists():
            shutil.rmtree(self.directory)
        if self.directory.exists():
            if not resume:
                committed = self._read().committed_chunks if self.state_path.exists() else 0
                raise ConfigError(
                    f"{self.directory} holds an unfinished run ({committed} chunks committed); "
                    "pass --resume to continue it or --fresh to start over"
                )
            if self.state_path.exists():
                state = self._read()
                self._check_same_run(state.fingerprint, fingerprint)
                for leftover in self.directory.glob("*.tmp"):
                    leftover.unlink()
                return state
        self.directory.mkdir(parents=True, exist_ok=True)
        state = RunState(fingerprint=fingerprint, input_names=list(input_names or []))
        self.save(state)
        return state

    def save(self, state: RunState) -> None:
        data = json.dumps(asdict(state), ensure_ascii=False, indent=1, sort_keys=True)
        write_atomically(self.state_path, data.encode("utf-8"))

    def commit(
        self, state: RunState, index: int, counts: ReadCounts, scored: pa.Table, rejects: list[dict]
    ) -> None:
        """Make chunk `index` durable, then advance the commit log past it."""
        if index != state.committed_chunks:
            raise RuntimeError(
                f"chunk {index} committed out of order (next is {state.committed_chunks})"
            )
        if scored.num_rows:
            sink = pa.BufferOutputStream()
            pq.write_table(scored, sink)
            write_atomically(self.part_path(index), sink.getvalue().to_pybytes())
        if rejects:
            lines = "".join(json.dumps(reject, ensure_ascii=False) + "\n" for reject in rejects)
            write_atomically(self.rejects_path(index), lines.encode("utf-8"))
        state.committed_chunks = index + 1
        tally(state, counts, scored.num_rows, rejects)
        self.save(state)

    def part_path(self, index: int) -> Path:
        return self.directory / f"part-{index:08d}.parquet"

    def rejects_path(self, index: int) -> Path:
        return self.directory / f"rejects-{index:08d}.jsonl"

    def parts(self, state: RunState) -> list[Path]:
        """Committed part files in chunk order (stale files past the commit point excluded)."""
        return [p for i in range(state.committed_chunks) if (p := self.part_path(i)).exists()]

    def reject_files(self, state: RunState) -> list[Path]:
        return [p for i in range(state.committed_chunks) if (p := self.rejects_path(i)).exists()]

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _read(self) -> RunState:
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            if raw.get("version") != STATE_VERSION:
                raise ValueError(f"state version {raw.get('version')}")
            return RunState(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"{self.state_path} is unreadable ({exc}); pass --fresh to start over"
            ) from None

    @staticmethod
    def _check_same_run(before: dict[str, Any], now: dict[str, Any]) -> None:
        # The kefu version first: an upgrade explains the other differences it brings.
        changed = sorted(
            (key for key in set(before) | set(now) if before.get(key) != now.get(key)),
            key=lambda key: (key != "kefu_version", key),
        )
        if changed:
            details = "; ".join(
                f"{key}: was {before.get(key)!r}, now {now.get(key)!r}" for key in changed[:3]
            )
            raise ConfigError(
                f"cannot resume: the run changed since it was interrupted ({details}); "
                "resume with the same kefu version, inputs, bundle and options, or pass --fresh to "
                "start over"
            )
