"""What a scoring run is asked to do (`ScoreJob`) and what it did (`Summary`)."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kefu.errors import ConfigError
from kefu.serving.batch.scoring import DEFAULT_BATCH_SIZE
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS

DEFAULT_CHUNK_SIZE = 2048


@dataclass(frozen=True)
class ScoreJob:
    inputs: list[str]  # paths or glob patterns: CSV, JSONL, Parquet
    output: Path  # .parquet, .csv or .jsonl; rejects go to OUTPUT.rejects.jsonl
    bundle: Path  # model bundle directory
    text_col: str = "text"
    id_col: str | None = None  # copied into every reject so it can be traced
    chunk_size: int = DEFAULT_CHUNK_SIZE  # rows per commit; memory holds ~(2 x workers + 1) chunks
    batch_size: int = DEFAULT_BATCH_SIZE  # rows per ONNX Runtime call
    workers: int = 1  # scoring processes (local) or actors (Ray)
    variant: str | None = None  # "fp32" | "int8" | None: the bundle's default
    policy: Path | None = None  # routing policy overriding the bundle's policy.yaml
    resume: bool = False  # continue an interrupted run from its last committed chunk
    fresh: bool = False  # discard an interrupted run's state and start over
    progress: bool = True
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS  # longer texts are rejected, as by the server

    def __post_init__(self) -> None:
        for name in ("chunk_size", "batch_size", "workers", "max_text_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.resume and self.fresh:
            raise ConfigError("--resume and --fresh contradict each other; pass one of them")

    def policy_hash(self) -> str:
        if self.policy is None:
            return ""
        try:
            return hashlib.sha256(Path(self.policy).read_bytes()).hexdigest()
        except OSError:
            return "unreadable"


@dataclass
class Summary:
    files: int = 0
    rows_read: int = 0
    scored: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    output: str = ""
    rejects_file: str = ""
    engine: str = "local"
    resumed_from_chunk: int = 0  # chunks already committed when this process started
    rows_this_run: int = 0  # rows read by this process (the rest by an interrupted run)

    def add(self, rows_read: int, scored: int, rejects: list[dict]) -> None:
        self.rows_read += rows_read
        self.scored += scored
        self.rejected += len(rejects)
        self.rejected_by_reason.update(reject["reason"] for reject in rejects)

    def check(self) -> None:
        """Rows read must equal scored + rejected; anything else is a bug, never hidden."""
        if self.rows_read != self.scored + self.rejected:
            raise RuntimeError(
                f"row accounting broken: read {self.rows_read} != scored {self.scored} + rejected {self.rejected}"
            )

    def lines(self) -> list[str]:
        rate = self.rows_this_run / self.seconds if self.seconds > 0 else 0.0
        reasons = ", ".join(
            f"{reason} {count}" for reason, count in sorted(self.rejected_by_reason.items())
        )
        return [
            f"rows read {self.rows_read} = scored {self.scored} + rejected {self.rejected}",
            f"rejected by reason: {reasons or 'none'}",
            f"{self.files} input file(s), engine {self.engine}, {self.rows_this_run} rows in "
            f"{self.seconds:.1f} s ({rate:,.0f} rows/s)",
            f"output: {self.output}",
            f"rejects: {self.rejects_file}",
        ]
