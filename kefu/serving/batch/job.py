"""What a scoring run is asked to do (`ScoreJob`) and what it did (`Summary`)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kefu.errors import ConfigError
from kefu.serving.batch.scoring import DEFAULT_BATCH_SIZE
from kefu.serving.batch.sessions import SessionSpec
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS
from kefu.tabular.options import MAX_RECORD_LINES

DEFAULT_CHUNK_SIZE = 2048
OUTPUT_FORMATS = ("parquet", "csv", "jsonl", "xlsx")


@dataclass(frozen=True)
class ScoreJob:
    inputs: list[
        str
    ]  # paths or glob patterns: CSV, TSV, JSONL (optionally .gz/.zst), Parquet, xlsx
    output: Path  # rejects go to OUTPUT.rejects.jsonl
    bundle: Path  # model bundle directory
    text_col: str = "text"
    id_col: str | None = None  # copied into every reject so it can be traced
    output_format: str | None = None  # parquet | csv | jsonl | xlsx; None: from the suffix
    excel_csv: bool = False  # CSV output starts with a UTF-8 BOM so Excel reads it as UTF-8
    encoding: str | None = None  # input text encoding; None: detected per file
    max_record_lines: int = MAX_RECORD_LINES  # a CSV record over more lines is rejected
    chunk_size: int = DEFAULT_CHUNK_SIZE  # rows per commit; memory holds ~(2 x workers + 1) chunks
    batch_size: int = DEFAULT_BATCH_SIZE  # rows per ONNX Runtime call
    workers: int = 1  # scoring processes (local) or actors (Ray)
    variant: str | None = None  # "fp32" | "int8" | None: the bundle's default
    policy: Path | None = None  # routing policy overriding the bundle's policy.yaml
    resume: bool = False  # continue an interrupted run from its last committed chunk
    fresh: bool = False  # discard an interrupted run's state and start over
    progress: bool = True
    session_col: str | None = None  # conversation id: route each message with its context
    turn_col: str | None = None  # customer turn number within the session (orders the turns)
    time_col: str | None = None  # message time (orders the turns when there is no turn column)
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS  # longer texts are rejected, as by the server

    def __post_init__(self) -> None:
        for name in ("chunk_size", "batch_size", "workers", "max_text_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.resume and self.fresh:
            raise ConfigError("--resume and --fresh contradict each other; pass one of them")
        if self.output_format not in (None, *OUTPUT_FORMATS):
            raise ConfigError(
                f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got {self.output_format!r}"
            )
        self.sessions  # noqa: B018 - validates the session options now

    @property
    def sessions(self) -> SessionSpec | None:
        """The conversation options, or None when messages are routed one by one."""
        return SessionSpec.from_options(self.session_col, self.turn_col, self.time_col)

    def policy_hash(self) -> str:
        if self.policy is None:
            return ""
        try:
            return hashlib.sha256(Path(self.policy).read_bytes()).hexdigest()
        except OSError:
            return "unreadable"


@dataclass
class ReadCounts:
    """What one chunk read from its file: rows, and the physical lines they came from."""

    file: str
    rows: int = 0  # records: scored + rejected
    lines: int = 0  # physical lines (Parquet: rows; xlsx: sheet rows; a JSON array: elements),
    # header and blanks included
    record_lines: int = 0  # the lines inside rows
    multiline_rows: int = 0  # rows over more than one line (a quoted field with line breaks)


class Tally(Protocol):
    """Running totals that `tally` adds to: a `Summary`, or the `RunState` of staging."""

    rows_read: int
    scored: int
    rejected: int
    lines_read: int
    record_lines: int
    multiline_rows: int

    @property
    def rejected_by_reason(self) -> MutableMapping[str, int]: ...

    @property
    def file_rows(self) -> dict[str, list[int]]: ...


def tally(into: Tally, counts: ReadCounts, scored: int, rejects: list[dict]) -> None:
    """Add one chunk to running totals (a `Summary`, or the `RunState` saved per commit)."""
    into.rows_read += counts.rows
    into.scored += scored
    into.rejected += len(rejects)
    into.lines_read += counts.lines
    into.record_lines += counts.record_lines
    into.multiline_rows += counts.multiline_rows
    for reject in rejects:
        into.rejected_by_reason[reject["reason"]] = (
            into.rejected_by_reason.get(reject["reason"], 0) + 1
        )
    file_rows = into.file_rows.setdefault(counts.file, [0, 0])
    file_rows[0] += counts.rows
    file_rows[1] += scored


@dataclass
class Summary:
    files: int = 0
    rows_read: int = 0
    scored: int = 0
    rejected: int = 0
    lines_read: int = 0  # physical input lines (see ReadCounts)
    record_lines: int = 0
    multiline_rows: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    file_rows: dict[str, list[int]] = field(default_factory=dict)  # file -> [rows read, scored]
    seconds: float = 0.0
    output: str = ""
    rejects_file: str = ""
    engine: str = "local"
    resumed_from_chunk: int = 0  # chunks already committed when this process started
    rows_this_run: int = 0  # rows read by this process (the rest by an interrupted run)

    def add(self, counts: ReadCounts, scored: int, rejects: list[dict]) -> None:
        tally(self, counts, scored, rejects)

    def check(self) -> None:
        """Rows read = scored + rejected, and lines hold rows; anything else is a bug, never hidden."""
        if self.rows_read != self.scored + self.rejected:
            raise RuntimeError(
                f"row accounting broken: read {self.rows_read} != scored {self.scored} + rejected {self.rejected}"
            )
        if not self.rows_read <= self.record_lines <= self.lines_read:
            raise RuntimeError(
                f"line accounting broken: {self.rows_read} rows in {self.record_lines} lines "
                f"of {self.lines_read} input lines"
            )

    def failures(self, max_reject_rate: float) -> list[str]:
        """Why the run must exit non-zero (outputs are written either way): one line each."""
        problems = [
            f"{file}: no usable rows ({read} read, all rejected)"
            if read
            else f"{file}: no usable rows (it holds no data rows)"
            for file, (read, scored) in self.file_rows.items()
            if scored == 0
        ]
        rate = self.rejected / self.rows_read if self.rows_read else 0.0
        if rate > max_reject_rate:
            problems.append(
                f"{self.rejected} of {self.rows_read} rows rejected ({rate:.1%}), more than "
                f"--max-reject-rate {max_reject_rate:g} ({max_reject_rate:.0%}); the reasons are "
                f"above and every rejected row is in {self.rejects_file}"
            )
        undecodable = self.rejected_by_reason.get("undecodable_text", 0)
        if problems and undecodable:
            problems.append(
                f"{undecodable} rows held bytes that did not decode: if an input is GBK/GB18030 "
                "(Excel on Chinese Windows), rerun with --encoding gb18030"
            )
        return problems

    def warnings(self) -> list[str]:
        """Where physical lines and rows disagree, said with numbers (the reject rate decides)."""
        found = []
        if self.multiline_rows:
            found.append(
                f"{self.record_lines} lines made {self.rows_read} rows: {self.multiline_rows} of "
                "them span several lines (quoted line breaks in a field)"
            )
        cut = {
            reason: self.rejected_by_reason[reason]
            for reason in ("unclosed_quote", "record_too_long")
            if self.rejected_by_reason.get(reason)
        }
        if cut:
            counts = ", ".join(f"{reason} {count}" for reason, count in cut.items())
            found.append(
                f"records rejected for broken quoting or length: {counts}; their lines are in "
                "the rejects, and the lines after a broken quote were read again as rows"
            )
        return found

    def lines(self) -> list[str]:
        rate = self.rows_this_run / self.seconds if self.seconds > 0 else 0.0
        reasons = ", ".join(
            f"{reason} {count}" for reason, count in sorted(self.rejected_by_reason.items())
        )
        return [
            f"rows read {self.rows_read} = scored {self.scored} + rejected {self.rejected}",
            f"input lines {self.lines_read} = {self.record_lines} in rows + "
            f"{self.lines_read - self.record_lines} header or blank",
            f"rejected by reason: {reasons or 'none'}",
            f"{self.files} input file(s), engine {self.engine}, {self.rows_this_run} rows in "
            f"{self.seconds:.1f} s ({rate:,.0f} rows/s)",
            f"output: {self.output}",
            f"rejects: {self.rejects_file}",
        ]
