"""The local engine's worker processes: `ScorerPool` scores chunks, `RoutingPool` routes buckets.

Usage: `with ScorerPool(job) as pool: for chunk, scores in pool.score_in_order(chunks): ...`;
`RoutingPool(workers)(tasks)` is session routing's `BucketRunner`.

Each scoring process holds its own ONNX Runtime session with `cores // workers` intra-op
threads, so the pool uses every core without oversubscribing. Both pools share the waits and
the checks (`_WorkerPool`): a worker that died is one line, never a hang; what a worker raised
reaches the user as the CLI treats any error (the user's one line, a bug its traceback).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from kefu.errors import KefuError, one_line
from kefu.serving.batch.bucket_routing import (
    BucketTask,
    SessionStats,
    route_bucket,
    route_serially,
)
from kefu.serving.batch.job import ScoreJob
from kefu.serving.batch.readers import Chunk
from kefu.serving.batch.scoring import Scorer
from kefu.serving.classifier import ort_threads

_WORKER_SCORER: Scorer | None = None  # one per worker process, set by `_start_worker`
_WORKER_SETUP_ERROR: Exception | None = None  # what loading it raised, raised by every call
Result = TypeVar("Result")


WORKER_DIED = (
    "a scoring worker process died (out of memory or killed?); committed chunks are "
    "kept: rerun with --resume, with fewer --workers or a smaller --chunk-size"
)
ROUTER_DIED = (
    "a session routing worker process died (out of memory or killed?); committed chunks are "
    "kept: rerun with --resume, with fewer --workers"
)
ROUTER_FAILED = (
    "(raised in a session routing worker process; committed chunks are kept: once fixed, "
    "rerun with --resume)"
)
SCORER_FAILED = (
    "(raised in a scoring worker process; committed chunks are kept: once fixed, rerun with "
    "--resume)"
)
# An OSError while scoring (a file the system would not read or write) is the user's: one line.
REFUSED = "scoring failed: {error}; committed chunks are kept: once fixed, rerun with --resume"


MANAGER_EXIT_SECONDS = 10.0
# How often a wait for a chunk looks for a dead worker. A worker killed while it wrote a result
# leaves half a message in the pool's result pipe: the pool's manager thread then waits for the
# rest forever and never marks the pool broken, and the other worker waits forever for the
# pipe's lock, so without this look the run would hang instead of stopping.
WORKER_CHECK_SECONDS = 1.0


class _WorkerPool:
    """Spawned worker processes that ignore Ctrl-C (the parent decides) and die with the parent,
    and the waits on them: a worker that died is the one line `died`, never a hang."""

    died = WORKER_DIED
    failed = SCORER_FAILED  # the note on a bug raised in a worker

    def __init__(self) -> None:
        self.executor: ProcessPoolExecutor | None = None

    def _spawn(self, workers: int, *scorer_args: Any) -> None:
        # spawn, not fork: the parent may hold threads (progress bar) and ORT state
        self.executor = ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(), *scorer_args),
        )

    def _submit(self, function: Callable[..., Result], *args: Any) -> Future[Result]:
        assert self.executor is not None
        try:
            return self.executor.submit(function, *args)
        except BrokenProcessPool:  # a worker died before this call could be queued
            raise KefuError(self.died) from None

    def _result(self, future: Future[Result]) -> Result:
        while True:
            try:
                return future.result(timeout=WORKER_CHECK_SECONDS)
            except BrokenProcessPool:
                raise KefuError(self.died) from None
            except TimeoutError:
                if self._a_worker_died():
                    raise KefuError(self.died) from None

    def _checked(self, future: Future[Result]) -> Result:
        """The call's result, or what the worker raised, as this process would have raised it
        doing the work itself: kefu's errors and what the system refused (an OSError, which the
        caller names: the merge its output, scoring `refused`) are the user's to act on;
        anything else is a bug and keeps the worker's traceback (the pool attaches it as the
        cause), as the CLI keeps every bug's, with a note of what was kept."""
        try:
            return self._result(future)
        except Exception as exc:
            if not isinstance(exc, KefuError | OSError):
                exc.add_note(self.failed)
            raise

    def _a_worker_died(self) -> bool:
        """Workers only end at shutdown, so one that ended while calls are out has died."""
        workers = (getattr(self.executor, "_processes", None) or {}).values()
        return any(worker.exitcode is not None for worker in list(workers))

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if self.executor is None:
            return
        if exc_type is None:
            self.executor.shutdown(wait=True)
            return
        # A broken or interrupted pool: waiting could hang on a worker that died holding the
        # call queue's lock, so stop the remaining workers instead (committed chunks are kept).
        workers = list((getattr(self.executor, "_processes", None) or {}).values())
        manager = getattr(self.executor, "_executor_manager_thread", None)
        results = getattr(self.executor, "_result_queue", None)  # shutdown forgets it
        self.executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.join(timeout=MANAGER_EXIT_SECONDS)
        # A manager thread stuck on half a result (see WORKER_CHECK_SECONDS) would also hang the
        # interpreter's exit, which joins it. With every worker gone, this process holds the last
        # write end of the result pipe: closing it ends that read (EOF), the pool counts itself
        # broken and the thread ends.
        writer = getattr(results, "_writer", None)
        if writer is not None:
            writer.close()
        # With its workers gone the pool's manager thread closes its wake-up pipe and ends. Let
        # it finish before the interpreter exits: CPython's exit hook writes to that pipe
        # without the pool's lock and, racing the close, prints an OSError traceback.
        if manager is not None:
            manager.join(timeout=MANAGER_EXIT_SECONDS)


class ScorerPool(_WorkerPool):
    """Scores chunks with `workers` processes (or in this process when workers == 1)."""

    def __init__(self, job: ScoreJob):
        super().__init__()
        self.job = job
        self.threads = ort_threads(job.workers)
        self.scorer: Scorer | None = None

    def __enter__(self) -> ScorerPool:
        args = (
            str(self.job.bundle),
            self.job.variant,
            self.job.policy,
            self.threads,
            self.job.batch_size,
        )
        if self.job.workers == 1:
            try:
                self.scorer = _make_scorer(*args)
            except OSError as exc:
                raise refused(exc) from None
        else:
            self._spawn(self.job.workers, *args)
        return self

    def score_in_order(self, chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, pa.Table]]:
        route_inputs = self.job.sessions is not None
        if self.scorer is not None:
            for chunk in chunks:
                try:
                    scores = self.scorer.score(chunk.texts, route_inputs=route_inputs)
                except OSError as exc:
                    raise refused(exc) from None
                yield chunk, scores
            return
        in_flight: deque[tuple[Chunk, Future[pa.Table]]] = deque()
        for chunk in chunks:
            in_flight.append((chunk, self._submit(_score_in_worker, chunk.texts, route_inputs)))
            if len(in_flight) >= 2 * self.job.workers:
                done, future = in_flight.popleft()
                yield done, self._scored(future)
        while in_flight:
            done, future = in_flight.popleft()
            yield done, self._scored(future)

    def _scored(self, future: Future[pa.Table]) -> pa.Table:
        try:
            return self._checked(future)
        except OSError as exc:
            raise refused(exc) from None


class RoutingPool(_WorkerPool):
    """A `BucketRunner` (bucket_routing.py) routing the buckets in `workers` processes, started
    for the routing pass and stopped after it; in this process when one would do. Each worker
    routes one bucket at a time (memory: workers x one bucket)."""

    died = ROUTER_DIED
    failed = ROUTER_FAILED

    def __init__(self, workers: int):
        super().__init__()
        self.workers = workers

    def __call__(self, tasks: list[BucketTask]) -> list[SessionStats]:
        workers = min(self.workers, len(tasks))
        if workers <= 1:
            return route_serially(tasks)
        with self:
            self._spawn(workers)
            futures = [self._submit(route_bucket, task) for task in tasks]
            return [self._checked(future) for future in futures]

    def __enter__(self) -> RoutingPool:
        return self


def refused(error: OSError) -> KefuError:
    """The one line of an OSError raised while scoring, here or in a worker (exit 1, as an
    input the system would not read): its type and message, which name the file."""
    return KefuError(REFUSED.format(error=one_line(error)))


def _make_scorer(
    bundle: str, variant: str | None, policy: Path | None, threads: int, batch_size: int
) -> Scorer:
    return Scorer.from_bundle(
        bundle, variant=variant, policy_path=policy, intra_op_threads=threads, batch_size=batch_size
    )


def _start_worker(parent_pid: int, *scorer_args: Any) -> None:
    """Worker set-up: ignore Ctrl-C (the parent decides), die with the parent, load the model
    (a scoring worker: given the `_make_scorer` arguments).

    A model that cannot be loaded here (the bundle changed since the run checked it, a file
    unreadable) is kept and raised by every call, so the parent reports it as if it had loaded
    the model itself: raised in the set-up, it would end the worker and read as "a scoring
    worker process died", its cause only in the worker's traceback."""
    global _WORKER_SCORER, _WORKER_SETUP_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if scorer_args:
        try:
            _WORKER_SCORER = _make_scorer(*scorer_args)
        except Exception as exc:
            _WORKER_SETUP_ERROR = exc


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)  # the parent was killed: nothing will collect our results


def _score_in_worker(texts: list[str], route_inputs: bool = False) -> pa.Table:
    if _WORKER_SETUP_ERROR is not None:
        raise _WORKER_SETUP_ERROR
    assert _WORKER_SCORER is not None
    return _WORKER_SCORER.score(texts, route_inputs=route_inputs)
