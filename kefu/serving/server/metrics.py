"""Prometheus metrics of the server.

Metrics live in a registry per app (tests build many apps in one process). Under several
uvicorn workers each process counts for itself; when PROMETHEUS_MULTIPROC_DIR is set (`kefu
serve --workers N` sets it) /metrics aggregates every worker's files instead.

Under several workers, the files of a worker that died without running its shutdown (kill -9,
out of memory) would keep its live gauges, e.g. `kefu_model_info{pid=...}`, in every scrape;
`sweep_dead_workers` drops them at start-up and at each scrape.

`kefu_model_info` shows the live model only: a hot reload removes the replaced model's series
(a dashboard counting series, or alerting on a version, would otherwise see every model ever
loaded). Several workers refuse a reload, but one worker may run with the caller's
PROMETHEUS_MULTIPROC_DIR: its file keeps every series it wrote (prometheus_client cannot remove
one from a file), so the replaced model is set to 0 there and the scrape leaves out 0 values.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

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
MODEL_INFO = "kefu_model_info"


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
        self.head_timeouts = Counter(
            "kefu_head_timeouts",
            "Connections closed because no whole request head arrived within "
            "KEFU_HEAD_TIMEOUT_SECONDS, by what had arrived: nothing (closed silently) or "
            "part of a head (answered 408 head_timeout).",
            ["received"],
            registry=registry,
        )
        self.protocol_errors = Counter(
            "kefu_protocol_errors",
            "Answers written by the HTTP protocol before the app saw a request, by status and "
            "code: 400 invalid_http (bytes that are not HTTP), 431 head_too_large (a request "
            "head over 64 KB), 503 concurrency_limit (over KEFU_LIMIT_CONCURRENCY).",
            ["status", "code"],
            registry=registry,
        )
        self.idle_connections_closed = Counter(
            "kefu_idle_connections_closed",
            "Idle kept-alive connections closed to make room for a request at "
            "KEFU_LIMIT_CONCURRENCY.",
            registry=registry,
        )
        self.model_info = Gauge(
            MODEL_INFO,
            "The serving model (value 1); a replaced model's series is removed.",
            ["model_version", "variant"],
            registry=registry,
            multiprocess_mode="liveall",
        )

        # Children bound once per label set: `labels()` checks and locks on every call, several
        # times per message; a dict lookup does not.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._model_labels: tuple[str, str] | None = None
        self.predicted = _bound(self.predictions)
        self.abstained = _bound(self.abstentions)
        self.routed = _bound(self.routes)
        self.acted = _bound(self.actions)
        self.reasoned = _bound(self.escalations)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_duration.observe(seconds)

    def serving_model(self, model_version: str, variant: str) -> None:
        """Show `model_version`/`variant` as the one model of this process in `kefu_model_info`."""
        labels = (model_version, variant)
        previous, self._model_labels = self._model_labels, labels
        if previous is not None and previous != labels:
            if _multiprocess():
                self.model_info.labels(*previous).set(0)  # left out of the scrape
            else:
                self.model_info.remove(*previous)
        self.model_info.labels(*labels).set(1)

    def head_timed_out(self, received: str) -> None:
        """A connection closed by the head time-out (`head_timeout.py`): received nothing or
        a partial head. Not a request: it has no route or method, so not in kefu_requests."""
        self.head_timeouts.labels(received).inc()

    def protocol_error(self, status: int, code: str) -> None:
        """An answer the HTTP protocol wrote itself (`protocol.py`): no route, so not in
        kefu_requests."""
        self.protocol_errors.labels(str(status), code).inc()

    def idle_connection_closed(self) -> None:
        self.idle_connections_closed.inc()

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

    def exposition(self, encoder: Callable[[Collector], bytes] = generate_latest) -> bytes:
        """The metrics in `encoder`'s format (`scrape_format.py`; the Prometheus text format by
        default), across worker processes when running multi-process."""
        if _multiprocess():
            sweep_dead_workers()
            merged = CollectorRegistry()
            merged.register(_LiveModelsOnly(MultiProcessCollector(None)))
            return encoder(merged)
        return encoder(self.registry)

    def close(self) -> None:
        """Drop this process's live gauges from a multi-process scrape when the worker exits."""
        if _multiprocess():
            mark_process_dead(os.getpid())


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _LiveModelsOnly(Collector):
    """The workers' merged metrics without the 0-valued `kefu_model_info` series: the models a
    reload replaced, which stay in the worker's file."""

    def __init__(self, merged: MultiProcessCollector):
        self.merged = merged

    def collect(self) -> Iterable[Metric]:
        for metric in self.merged.collect():
            if metric.name == MODEL_INFO:
                metric.samples = [sample for sample in metric.samples if sample.value != 0]
            yield metric


def _bound(metric: Any) -> Callable[..., Any]:
    """`metric.labels(*values)`, remembered per label values (label sets here are few)."""
    children: dict[tuple[str, ...], Any] = {}

    def child(*values: str) -> Any:
        found = children.get(values)
        if found is None:
            found = children.setdefault(values, metric.labels(*values))
        return found

    return child


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
