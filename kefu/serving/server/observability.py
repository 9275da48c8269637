"""Prometheus metrics and structured JSON logs of the server.

Metrics live in a registry per app (tests build many apps in one process). Under several
uvicorn workers each process counts for itself; when PROMETHEUS_MULTIPROC_DIR is set (`kefu
serve --workers N` sets it) /metrics aggregates every worker's files instead.

Logs are one JSON object per line, formatted and written by a log thread (`BackgroundJsonHandler`),
so the event loop only queues records. The access log writes one line per request: labels, masked
ids and routing; message text only when KEFU_LOG_TEXT asks for it ("masked": personal data
replaced, see `kefu/serving/masking.py`; "raw"). Request headers are never logged, so API keys
and admin tokens cannot leak into logs.

Under several workers, the files of a worker that died without running its shutdown (kill -9,
out of memory) would keep its live gauges, e.g. `kefu_model_info{pid=...}`, in every scrape;
`sweep_dead_workers` drops them at start-up and at each scrape.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import logging.handlers
import os
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from kefu.serving.masking import mask_text

LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.004,
    0.006,
    0.008,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
ACCESS_LOGGER = "kefu.access"
LOGGED_TEXT_CHARS = 200  # log lines stay short even for 20,000-character messages
MASK_MARGIN_CHARS = 40


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # *_created series double the scrape for no dashboard use
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "kefu_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "kefu_request_duration_seconds",
            "HTTP request latency by route, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "kefu_batch_size",
            "Messages per model call (after micro-batching).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "kefu_batch_duration_seconds",
            "Wall time of one model call: tokenise, ORT, decode.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "kefu_queue_depth",
            "Messages waiting for the model.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "kefu_predictions",
            "Predicted labels by head.",
            ["head", "label"],
            registry=registry,
        )
        self.abstentions = Counter(
            "kefu_abstentions",
            "Messages on which a head abstained (low confidence).",
            ["head"],
            registry=registry,
        )
        self.routes = Counter(
            "kefu_routes",
            "Messages routed, by queue and priority.",
            ["queue", "priority"],
            registry=registry,
        )
        self.actions = Counter(
            "kefu_actions",
            "Messages by route action: bot, clarify or human.",
            ["action"],
            registry=registry,
        )
        self.escalations = Counter(
            "kefu_escalations",
            "Route reasons (a message may carry several; low_confidence alone means clarify).",
            ["reason"],
            registry=registry,
        )
        self.escalated = Counter(
            "kefu_escalated_messages", "Messages escalated to a human.", registry=registry
        )
        self.model_info = Gauge(
            "kefu_model_info",
            "The serving model (value 1; 0 after it was replaced).",
            ["model_version", "variant"],
            registry=registry,
            multiprocess_mode="liveall",
        )

        # Children bound once per label set: `labels()` checks and locks on every call, several
        # times per message; a dict lookup does not.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.predicted = _bound(self.predictions)
        self.abstained = _bound(self.abstentions)
        self.routed = _bound(self.routes)
        self.acted = _bound(self.actions)
        self.reasoned = _bound(self.escalations)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_duration.observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = self._request_children.setdefault(
                key, (self.requests.labels(*labels), self.latency.labels(*labels))
            )
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format, across worker processes when running multi-process."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            sweep_dead_workers()
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)

    def close(self) -> None:
        """Drop this process's live gauges from a multi-process scrape when the worker exits."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            mark_process_dead(os.getpid())


def _bound(metric: Any) -> Callable[..., Any]:
    """`metric.labels(*values)`, remembered per label values (label sets here are few)."""
    children: dict[tuple[str, ...], Any] = {}

    def child(*values: str) -> Any:
        found = children.get(values)
        if found is None:
            found = children.setdefault(values, metric.labels(*values))
        return found

    return child


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
        "()": "kefu.serving.server.observability.BackgroundJsonHandler",
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
    """Text as it may appear in a log line: masked unless `raw`, shortened.

    Only the head is masked (a bounded cost however long the text); the margin past the cut
    lets a number that straddles it be recognised whole.
    """
    if len(text) <= LOGGED_TEXT_CHARS:
        return text if raw else mask_text(text)
    head = text if raw else mask_text(text[: LOGGED_TEXT_CHARS + MASK_MARGIN_CHARS])
    return head[:LOGGED_TEXT_CHARS] + f"...(+{len(text) - LOGGED_TEXT_CHARS} chars)"


def sweep_dead_workers(directory: str | None = None) -> list[int]:
    """Drop the live-gauge files of worker processes that no longer exist; returns their pids."""
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return []
    pids = set()
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            stem = name.removesuffix(".db")
            digits = stem.rsplit("_", 1)[-1]
            if stem != name and digits.isdigit():
                pids.add(int(digits))
    dead = sorted(pid for pid in pids if not _alive(pid))
    for pid in dead:
        mark_process_dead(pid, directory)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
