"""Micro-batching: concurrent requests share one model call.

A single CPU inference thread serves every request of a worker. Each message is queued with a
future; the batching loop takes what is waiting (up to `max_batch_size` messages), sorts it by
length and cuts it into groups of similar length (padding to the longest row of a batch costs
compute on every shorter row), and runs the groups on the inference thread, so the event loop
never blocks on the model.

Waiting for company costs latency, so the loop waits up to `max_wait_ms` only when it has seen
concurrency (more than one message queued now or in the previous batch); a lone client pays
nothing. The queue is bounded in messages: a request that does not fit is refused at once
(`Overloaded`, HTTP 503 + Retry-After) instead of piling up latency for everyone, and
`would_refuse()` lets the server refuse before it even reads a request (see `gate.py`).
Messages whose request was cancelled (its client hung up) are dropped when the loop reaches
them: they take no place in a batch and no model time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from kefu.errors import NotReady, Overloaded
from kefu.serving.length_batches import length_groups

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Queued:
    item: object
    length: int
    future: asyncio.Future


class MicroBatcher(Generic[Item, Result]):
    """Coalesce `submit(items)` calls into `run_batch(items) -> results` calls on one thread.

    `run_batch` must return one result per item, in order; `length_of(item)` is the length
    used for grouping, capped at `length_cap` (texts longer than the model window are
    truncated to the same size anyway).
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], list[Result]],
        *,
        length_of: Callable[[Item], int] = len,  # type: ignore[assignment]
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        queue_size: int = 256,
        length_cap: int = 512,
        on_batch: Callable[[int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
        name: str = "kefu-infer",
    ):
        self._run_batch = run_batch
        self._length_of = length_of
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.length_cap = length_cap
        self._on_batch = on_batch or (lambda size, seconds: None)
        self._on_depth = on_depth or (lambda depth: None)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue()
        self._waiting = 0  # messages queued, not yet taken into a batch
        self._in_flight = 0  # messages taken into the batch the model is running now
        self._last_batch_size = 0
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
        self._typical_request += (len(items) - self._typical_request) / 8
        if self._waiting + len(items) > self.queue_size:
            raise Overloaded(
                f"server busy: {self._waiting} messages are waiting (queue holds "
                f"{self.queue_size}); retry after a short pause"
            )
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            future = loop.create_future()
            length = min(self._length_of(item), self.length_cap)
            self._queue.put_nowait(_Queued(item, length, future))
            futures.append(future)
        self._waiting += len(items)
        self._on_depth(self._waiting)
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        """Finish what is queued, then stop the loop and the inference thread."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False)

    async def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            items, stopping = await self._collect(first)
            self._waiting -= len(items)
            self._on_depth(self._waiting)
            self._last_batch_size = self._in_flight = len(items)
            try:
                await self._run(items)
            finally:
                self._in_flight = 0

    async def _collect(self, first: _Queued) -> tuple[list[_Queued], bool]:
        """`first` plus whatever joins it within the wait budget; True when a stop was seen.

        Messages of cancelled requests are taken off the queue but not into the batch.
        """
        items = [first]
        while len(items) < self.max_batch_size and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return items, True
            if item.future.done():
                self._waiting -= 1
                continue
            items.append(item)
        if self.max_wait <= 0 or (len(items) == 1 and self._last_batch_size <= 1):
            return items, False
        deadline = time.monotonic() + self.max_wait
        while len(items) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                break
            if item is None:
                return items, True
            if item.future.done():
                self._waiting -= 1
                continue
            items.append(item)
        return items, False

    async def _run(self, items: list[_Queued]) -> None:
        live = [item for item in items if not item.future.done()]  # skip disconnected clients
        if not live:
            return
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self._executor, self._infer, [i.item for i in live], [i.length for i in live]
            )
        except Exception as exc:  # a model failure fails these requests, never the loop
            for item in live:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, result in zip(live, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)

    def _infer(self, items: list, lengths: list[int]) -> list[Result]:
        """On the inference thread: one model call per length group, results in input order."""
        results: list[Result | None] = [None] * len(items)
        for group in length_groups(lengths, self.max_batch_size):
            started = time.perf_counter()
            outputs = self._run_batch([items[index] for index in group])
            self._on_batch(len(group), time.perf_counter() - started)
            for index, output in zip(group, outputs, strict=True):
                results[index] = output
        return results  # type: ignore[return-value]
