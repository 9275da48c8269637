"""Progress of a scoring run: a rich bar (rows, rows/s, ETA) on a terminal, log lines elsewhere.

The total is an estimate taken before scoring (`kefu.tabular.estimate_records`: Parquet row
counts from the footer, line counts of text formats, a slight overcount when quoted fields span
lines). It only feeds the ETA; the summary counts rows exactly.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LOG_EVERY_SECONDS = 10.0


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")


class ProgressReporter:
    """`advance(rows)` after each committed chunk; a context manager around the run."""

    def __init__(
        self, total: int | None, done: int = 0, enabled: bool = True, console: Console | None = None
    ):
        self.console = console or Console(stderr=True)
        self.total, self.done = total, done
        self.enabled = enabled
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._started = time.monotonic()
        self._last_log = self._started
        self._done_at_start = done

    def __enter__(self) -> ProgressReporter:
        if self.enabled and self.console.is_terminal:
            self._bar = Progress(
                TextColumn("scoring"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=self.console,
                speed_estimate_period=60.0,
            )
            self._bar.start()
            self._task = self._bar.add_task("scoring", total=self.total, completed=self.done)
        return self

    def advance(self, rows: int) -> None:
        self.done += rows
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done)
            return
        now = time.monotonic()
        if self.enabled and now - self._last_log >= LOG_EVERY_SECONDS:
            self._last_log = now
            rate = (self.done - self._done_at_start) / max(now - self._started, 1e-9)
            left = (self.total - self.done) / rate if self.total and rate > 0 else None
            eta = f", ETA {left:.0f} s" if left is not None and left >= 0 else ""
            total = f"/~{self.total}" if self.total else ""
            self.console.print(
                f"scoring: {self.done}{total} rows, {rate:,.0f} rows/s{eta}", highlight=False
            )

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            if kind is None and self._task is not None:
                self._bar.update(self._task, total=self.done, completed=self.done)
            self._bar.stop()
