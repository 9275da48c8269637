"""One log line a minute at most for events a bad client can repeat at will.

Why: the HTTP protocol answers or closes some connections before the app sees a request (a head
that never arrives, bytes that are not HTTP, a request over `KEFU_LIMIT_CONCURRENCY`). A line
per event lets a flood of bad or slow clients flood the log, burying every other line and
filling the disk; their exact numbers are the Prometheus counters' job. So each kind of event
writes a line at its first occurrence, then at most one every `LOG_EVERY_SECONDS`, carrying the
counts since the line before (events after the last line are counted in the next one, or in
the line `flush_counted_logs` writes when the worker shuts down, so no count is left unlogged).
Counts are per worker process, as the log lines are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

LOG_EVERY_SECONDS = 60.0
_CREATED: list[CountedLog] = []  # every instance, for the line of what is left at shutdown


class CountedLog:
    """Counts events of a few kinds; `add` writes `message` with the counts since the last line
    (one field per kind, after `add`'s own fields) when LOG_EVERY_SECONDS have passed."""

    def __init__(self, logger: logging.Logger, level: int, message: str, kinds: Sequence[str]):
        self.logger, self.level, self.message = logger, level, message
        self.counts = dict.fromkeys(kinds, 0)
        self.next_line = 0.0  # time.monotonic() before which no line is written
        self.fields: dict[str, Any] = {}  # `add`'s own fields of the latest event
        _CREATED.append(self)

    def add(self, kind: str, **fields: Any) -> None:
        self.counts[kind] += 1
        self.fields = fields
        now = time.monotonic()
        if now < self.next_line:
            return
        self.next_line = now + LOG_EVERY_SECONDS
        self.write()

    def write(self) -> None:
        """The line of the counts since the last one, which start again from 0."""
        counts, self.counts = self.counts, dict.fromkeys(self.counts, 0)
        self.logger.log(self.level, self.message, extra={"fields": {**self.fields, **counts}})


def flush_counted_logs() -> None:
    """At shutdown: the line of every kind of event counted since its last line."""
    for counted in _CREATED:
        if any(counted.counts.values()):
            counted.write()
