"""One log line a minute at most for events a bad client can repeat at will.

Why: the HTTP protocol answers or closes some connections before the app sees a request (a head
that never arrives, bytes that are not HTTP, a request over `KEFU_LIMIT_CONCURRENCY`). A line
per event lets a flood of bad or slow clients flood the log, burying every other line and
filling the disk; their exact numbers are the Prometheus counters' job. So each kind of event
writes a line at its first occurrence, then at most one every `LOG_EVERY_SECONDS`, carrying the
counts since the line before (events after the last line are counted in the next one).
Counts are per worker process, as the log lines are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

LOG_EVERY_SECONDS = 60.0


class CountedLog:
    """Counts events of a few kinds; `add` writes `message` with the counts since the last line
    (one field per kind, after `add`'s own fields) when LOG_EVERY_SECONDS have passed."""

    def __init__(self, logger: logging.Logger, level: int, message: str, kinds: Sequence[str]):
        self.logger, self.level, self.message = logger, level, message
        self.counts = dict.fromkeys(kinds, 0)
        self.next_line = 0.0  # time.monotonic() before which no line is written

    def add(self, kind: str, **fields: Any) -> None:
        self.counts[kind] += 1
        now = time.monotonic()
        if now < self.next_line:
            return
        self.next_line = now + LOG_EVERY_SECONDS
        counts, self.counts = self.counts, dict.fromkeys(self.counts, 0)
        self.logger.log(self.level, self.message, extra={"fields": {**fields, **counts}})
