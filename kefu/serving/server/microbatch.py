"""Micro-batching: concurrent requests share model calls.

`threads` inference threads (one per core given to the worker) serve every request of a
worker, each running whole model calls. Each request is queued whole, with one future for all
its messages (one hop in, one answer out). The batching loop takes what is waiting (whole
requests, up to `COLLECT_BATCHES` model batches' worth of messages), sorts the messages by
length and cuts them into groups of close length and at most `max_batch_size` (padding to the
longest row of a group costs compute on every shorter row), and hands the groups to the
inference threads in one go, where they run side by side; the event loop never blocks on the
model. A request is answered as soon as the groups holding its messages are done.

Waiting for company costs latency, so the loop waits up to `max_wait_ms` only when it has seen
concurrency (more than one message queued now or in the previous batch) and the model was idle
when the batch began; a lone client pays nothing, and messages that queued up while the model
was busy go at once. The queue is bounded in messages: a request that does not fit is refused
at once (`Overloaded`, HTTP 503 + Retry-After) instead of piling up latency for everyone, and
`would_refuse()` lets the server refuse before it even reads a request (see `gate.py`).
Requests that were cancelled (their client hung up) are dropped when the loop reaches them:
they take no place in a batch and no model time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from kefu.errors import NotReady, Overloaded
from kefu.serving.length_batches import length_groups

# One batch may take this many model calls' worth of queued messages: sorting more messages by
# length gives groups of closer lengths, and padding is most of what a group costs beyond its
# real tokens (benchmarks/README.md). Groups are cut tighter than `length_groups`' defaults
# for the same reason: on short messages a few more model calls cost less than the padding.
COLLECT_BATCHES = 4
GROUP_RATIO = 1.25
GROUP_SLACK = 4

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Queued:
    """One request's messages: they join a batch together and share one future."""

    items: Sequence
    lengths: list[int]
    future: asyncio.Future


class MicroBatcher(Generic[Item, Result]):
    """Coalesce `submit(items)` calls into `run_batch(items) -> results` calls on one thread.

    `run_batch` must return one result per item, in order; `length_of(item)` is the length
    used for grouping, capped at `length_cap` (texts longer than the model window are
    truncated to the same size anyway). `run_alone`, when given, replaces `run_batch` for a
    batch that is one group while no other model call runs: it may use every core.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], list[Result]],
        *,
        run_alone: Callable[[list[Item]], list[Result]] | None = None,
        length_of: Callable[[Item], int] = len,  # type: ignore[assignment]
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        queue_size: int = 256,
        length_cap: int = 512,
        length_ratio: float = GROUP_RATIO,
        length_slack: int = GROUP_SLACK,
        on_batch: Callable[[int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
        name: str = "kefu-infer",
        threads: int = 1,
    ):
        self._run_batch = run_batch
        self._run_alone = run_alone or run_batch
        self._length_of = length_of
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.length_cap = length_cap
        self.collect_size = max_batch_size * COLLECT_BATCHES
        self.length_ratio, self.length_slack = length_ratio, length_slack
        self._on_batch = on_batch or (lambda size, seconds: None)
        self._on_depth = on_depth or (lambda depth: None)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._threads = threads
        self._jobs: set[asyncio.Future] = set()  # model calls handed over, not yet done
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue()
        self._waiting = 0  # messages queued, not yet taken into a batch
        self._in_flight = 0  # messages taken into the batch the model is running now
        self._last_batch_size = 0
        self._backlog = False  # messages were waiting when the last batch finished
        self._typical_request = 1.0  # moving average of messages per submitted request
        self._task: asyncio.Task | None = None
        self._closed = False

    @property
    def depth(self) -> int:
        """Messages waiting for the model."""
        return self._waiting

    @property
    def in_flight(self) -> int:
        """Messages the model is working on now."""
        return self._in_flight

    def would_refuse(self) -> bool:
        """True when a request of the usual size would not fit in the queue now."""
        return self._waiting + self._typical_request > self.queue_size

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="kefu-batcher")

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Results for `items`, in order. Raises Overloaded when the queue cannot take them."""
        if self._closed or self._task is None:
            raise NotReady("the model is not serving yet (or is shutting down); retry shortly")
        if not items:  # nothing to batch: a queued empty request would wait for no results
            return []
        self._typical_request += (len(items) - self._typical_request) / 8
        if self._waiting + len(items) > self.queue_size:
            raise Overloaded(
                f"server busy: {self._waiting} messages are waiting (queue holds "
                f"{self.queue_size}); retry after a short pause"
            )
        future = asyncio.get_running_loop().create_future()
        cap, length_of = self.length_cap, self._length_of
        lengths = [min(length_of(item), cap) for item in items]
        self._queue.put_nowait(_Queued(items, lengths, future))
        self._waiting += len(items)
        self._on_depth(self._waiting)
        return await future

    async def close(self) -> None:
        """Finish what is queued, then stop the loop and the inference thread."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._jobs:
            await asyncio.wait(set(self._jobs))
        self._executor.shutdown(wait=False)

    async def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            requests, stopping = await self._collect(first)
            size = sum(len(request.items) for request in requests)
            self._waiting -= size
            self._on_depth(self._waiting)
            self._last_batch_size = size
            await self._run(requests)
            # what queued while the model was busy goes at once: waiting for company then only
            # leaves the model idle (at c=32 every client may already be in the queue)
            self._backlog = not self._queue.empty()

    def _take(self, request: _Queued, requests: list[_Queued], size: int) -> int:
        """Add `request` to the batch unless its client left; returns the batch's new size."""
        if request.future.done():  # cancelled: its client hung up while it waited
            self._waiting -= len(request.items)
            return size
        requests.append(request)
        return size + len(request.items)

    async def _collect(self, first: _Queued) -> tuple[list[_Queued], bool]:
        """`first` plus whatever joins it within the wait budget; True when a stop was seen.

        Whole requests join a batch; requests of clients that hung up are taken off the queue
        but not into the batch.
        """
        requests: list[_Queued] = []
        size = self._take(first, requests, 0)
        queue = self._queue
        while size < self.collect_size and not queue.empty():
            request = queue.get_nowait()
            if request is None:
                return requests, True
            size = self._take(request, requests, size)
        if self.max_wait <= 0 or self._backlog or (size <= 1 and self._last_batch_size <= 1):
            return requests, False
        deadline = time.monotonic() + self.max_wait
        while size < self.collect_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                request = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
            if request is None:
                return requests, True
            size = self._take(request, requests, size)
        return requests, False

    async def _run(self, requests: list[_Queued]) -> None:
        """Hand the batch's length groups to the inference threads; return once one is free.

        Every group is handed over at once (no idle gap between groups), a request is answered
        as soon as the groups holding its messages are done, and the next batch is formed as
        soon as an inference thread has nothing left to do, not when the last group of this
        one is done.
        """
        live = [request for request in requests if not request.future.done()]
        if not live:
            return
        items: list = []
        lengths: list[int] = []
        owners: list[int] = []  # per message: its request's position in `live`
        starts: list[int] = []  # per request: its first message's position in `items`
        for number, request in enumerate(live):
            starts.append(len(items))
            items.extend(request.items)
            lengths.extend(request.lengths)
            owners.extend([number] * len(request.items))
        results: list[Result | None] = [None] * len(items)
        missing = [len(request.items) for request in live]
        loop = asyncio.get_running_loop()
        groups = length_groups(lengths, self.max_batch_size, self.length_ratio, self.length_slack)

        def deliver(group: list[int], job: asyncio.Future) -> None:
            """Answer the requests this group completes (or fail those it holds)."""
            self._jobs.discard(job)
            self._in_flight -= len(group)
            if job.cancelled():
                return
            failure = job.exception()
            for position, index in enumerate(group):
                future = live[owners[index]].future
                if future.done():
                    continue
                if failure is not None:  # a model failure fails its requests, never the loop
                    future.set_exception(failure)
                    continue
                results[index] = job.result()[position]
                owner = owners[index]
                missing[owner] -= 1
                if missing[owner] == 0:
                    start = starts[owner]
                    future.set_result(results[start : start + len(live[owner].items)])

        self._in_flight += len(items)
        alone = len(groups) == 1 and not self._jobs  # nothing else runs: it may take every core
        for group in groups:
            job = loop.run_in_executor(
                self._executor, self._infer, [items[index] for index in group], alone
            )
            job.add_done_callback(functools.partial(deliver, group))
            self._jobs.add(job)
        while len(self._jobs) >= self._threads:
            await asyncio.wait(set(self._jobs), return_when=asyncio.FIRST_COMPLETED)

    def _infer(self, items: list, alone: bool = False) -> list[Result]:
        """On the inference thread: one model call (`run_alone` when nothing else runs)."""
        started = time.perf_counter()
        outputs = (self._run_alone if alone else self._run_batch)(items)
        self._on_batch(len(items), time.perf_counter() - started)
        return outputs
