"""Structured JSON logs of the server, written by a log thread.

Logs are one JSON object per line, formatted and written by a log thread (`BackgroundJsonHandler`),
so the event loop only queues records. The access log writes one line per request: labels, masked
ids and routing; message text only when KEFU_LOG_TEXT asks for it ("masked": personal data
replaced, see `kefu/serving/masking.py`; "raw"). Request headers are never logged, so API keys
and admin tokens cannot leak into logs.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kefu.serving.masking import mask_text, masked_pieces

ACCESS_LOGGER = "kefu.access"
LOGGED_TEXT_CHARS = 200  # log lines stay short even for 20,000-character messages
MASK_MARGIN_CHARS = 40


class Deferred:
    """A log field computed when the line is written (on the log thread), not when logged."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[], Any]):
        self.build = build


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's `fields` extra."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            line[key] = value.build() if isinstance(value, Deferred) else value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class BackgroundJsonHandler(logging.Handler):
    """JSON lines to `stream`; access-log lines are formatted and written by a log thread.

    For `kefu.access`, one line per request, the event loop only puts the record on a queue:
    building the line (per-message entries, masking, `json.dumps`) and the write happen on
    the log thread, which takes whatever has queued up and writes it in one call (under load,
    one wake-up and one write for many requests). Every other record (start-up, shutdown,
    errors) is written at once, so it is on disk even when the process ends by a re-raised
    SIGTERM, which skips `atexit`; `flush()` (the app calls it at shutdown) returns once every
    line queued before it is written.
    """

    def __init__(self, stream: Any = None):
        super().__init__()
        self.target = logging.StreamHandler(stream)
        self.target.setFormatter(JsonFormatter())
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._write, name="kefu-log", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == ACCESS_LOGGER:
            self.queue.put(record)  # as it is: one process, nothing to pickle or pre-format
        else:
            self.target.handle(record)

    def _write(self) -> None:
        stream, formatter, pending = self.target.stream, self.target.formatter, self.queue
        while True:
            batch = [pending.get()]
            while not pending.empty() and len(batch) < 1024:
                batch.append(pending.get_nowait())
            lines, done = [], []
            for item in batch:
                if isinstance(item, logging.LogRecord):
                    try:
                        lines.append(formatter.format(item) + "\n")  # type: ignore[union-attr]
                    except Exception:
                        self.handleError(item)
                elif item is not None:
                    done.append(item)  # a flush() waiting for what came before it
            if lines:
                with self.target.lock:  # type: ignore[union-attr]
                    try:
                        stream.write("".join(lines))
                        stream.flush()
                    except Exception:
                        self.handleError(batch[0])
            for event in done:
                event.set()
            if None in batch:
                return

    def flush(self) -> None:
        if self.thread.is_alive():
            written = threading.Event()
            self.queue.put(written)
            written.wait(10)
        self.target.flush()

    def close(self) -> None:
        """Write what is queued and stop the log thread (at exit; more calls do nothing)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(10)
        super().close()


def flush_logs() -> None:
    """Write out what the log thread still holds (at shutdown, before the process may die)."""
    for handler in logging.getLogger("kefu").handlers:
        handler.flush()


def log_config(level: str = "info") -> dict[str, Any]:
    """A logging.config dict for uvicorn: kefu and uvicorn loggers, JSON to stderr (log thread)."""
    level = level.upper()
    handler = {
        "()": "kefu.serving.server.access_log.BackgroundJsonHandler",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"json": handler},
        "loggers": {
            "kefu": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def logged_text(text: str, raw: bool = False) -> str:
    """Text as it may appear in a log line: masked unless `raw`, cut at LOGGED_TEXT_CHARS.

    A cut text ends with `...(+N chars)`, N the characters of the original left out. A masked
    text is cut between pieces of `masked_pieces`: a `<kind>` marker across the cut is kept
    whole (at most 17 characters more), never split into `<pho`. Only a head is masked (a
    bounded cost however long the text), reaching at least MASK_MARGIN_CHARS past what is kept,
    so that a number across the end of the head is recognised whole: the head grows when
    markers shorter than what they replace pull later text into the kept part.
    """
    if len(text) <= LOGGED_TEXT_CHARS:
        return text if raw else mask_text(text)
    if raw:
        kept, shown = LOGGED_TEXT_CHARS, text[:LOGGED_TEXT_CHARS]
    else:
        head_chars = LOGGED_TEXT_CHARS + MASK_MARGIN_CHARS
        while True:
            kept, shown = _masked_beginning(text[:head_chars])
            if head_chars >= len(text) or kept + MASK_MARGIN_CHARS <= head_chars:
                break
            head_chars *= 2
    if kept >= len(text):  # the masked text is short enough whole
        return shown
    return shown + f"...(+{len(text) - kept} chars)"


def _masked_beginning(head: str) -> tuple[int, str]:
    """The masked beginning of `head` shown in a log: (original characters it stands for, text),
    cut at LOGGED_TEXT_CHARS but never inside a `<kind>` marker."""
    kept, shown = 0, []
    room = LOGGED_TEXT_CHARS
    for original, piece in masked_pieces(head):
        if room <= 0:
            break
        if piece == original:  # plain text: cut anywhere
            piece = original = original[:room]
        kept += len(original)
        shown.append(piece)
        room -= len(piece)
    return kept, "".join(shown)
