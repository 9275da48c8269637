"""Micro-batching: coalescing, length groups, order, bounded queue, failures, shutdown.

With a stand-in model; the batcher behind a real model and in the app: `test_batcher_in_server.py`.
"""

import asyncio
import threading
import time

import pytest

from kefu.errors import NotReady, Overloaded
from kefu.serving.length_batches import length_groups
from kefu.serving.server.microbatch import COLLECT_BATCHES, MicroBatcher


class RecordingModel:
    """A stand-in model: answers each text with its upper-case form and records every call."""

    def __init__(self, gate: threading.Event | None = None, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.gate = gate
        self.fail_on = fail_on

    def __call__(self, texts: list[str]) -> list[str]:
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(list(texts))
        if self.fail_on in texts:
            raise RuntimeError("model failed")
        return [text.upper() for text in texts]


def run(coro):
    return asyncio.run(coro)


async def until(condition, seconds=5.0):
    """Wait for `condition()`: a failed assertion, not a hung test, when it never holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the batcher never reached the awaited state"
        await asyncio.sleep(0.001)


async def held(model, items, **options):
    """A started batcher whose gated model has taken `items` and holds them, so what is
    submitted next queues up: (the batcher, that request's future)."""
    batcher = MicroBatcher(model, **options)
    batcher.start()
    request = asyncio.ensure_future(batcher.submit(items))
    await until(lambda: batcher.in_flight == len(items))
    return batcher, request


def test_length_groups_sort_and_cut_by_length_and_size():
    lengths = [100, 1, 3, 200, 2, 40]
    assert length_groups(lengths, max_size=32) == [[1, 4, 2], [5], [0, 3]]
    assert length_groups([5] * 5, max_size=2) == [[0, 1], [2, 3], [4]]
    assert length_groups([], max_size=4) == []


def test_concurrent_submits_share_one_model_call_and_keep_order():
    model = RecordingModel()

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=32, max_wait_ms=0)
        batcher.start()
        answers = asyncio.gather(*(batcher.submit([f"a{i}", f"b{i}"]) for i in range(5)))
        results = await asyncio.wait_for(answers, 5)  # a request never answered fails the test
        await batcher.close()
        return results

    results = run(scenario())
    assert results == [[f"A{i}", f"B{i}"] for i in range(5)]
    assert len(model.calls) == 1
    assert sorted(model.calls[0]) == sorted(f"{p}{i}" for i in range(5) for p in "ab")


def test_an_empty_request_is_answered_at_once_without_a_model_call():
    model = RecordingModel()

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=32, max_wait_ms=0)
        batcher.start()
        empty = await asyncio.wait_for(batcher.submit([]), 5)  # queued, it would never be answered
        after = await asyncio.wait_for(batcher.submit(["x"]), 5)
        await batcher.close()
        return empty, after

    assert run(scenario()) == ([], ["X"])
    assert model.calls == [["x"]]


def test_batches_are_cut_at_max_batch_size():
    model = RecordingModel()

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=4, max_wait_ms=0)
        batcher.start()
        result = await batcher.submit([f"t{i}" for i in range(10)])
        await batcher.close()
        return result

    assert run(scenario()) == [f"T{i}" for i in range(10)]
    assert [len(call) for call in model.calls] == [4, 4, 2]


def test_similar_lengths_go_to_the_same_model_call():
    model = RecordingModel()
    texts = ["短", "x" * 300, "中等长度", "y" * 280]

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=32, max_wait_ms=0, length_cap=512)
        batcher.start()
        result = await batcher.submit(texts)
        await batcher.close()
        return result

    assert run(scenario()) == [text.upper() for text in texts]
    assert model.calls == [["短", "中等长度"], ["y" * 280, "x" * 300]]


def test_a_lone_client_does_not_wait_but_concurrent_ones_gather():
    model = RecordingModel()

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=32, max_wait_ms=150)
        batcher.start()
        started = time.monotonic()
        await batcher.submit(["alone"])
        alone_seconds = time.monotonic() - started
        await asyncio.gather(batcher.submit(["p1"]), batcher.submit(["p2"]))  # concurrency seen

        async def late():
            await asyncio.sleep(0.03)
            return await batcher.submit(["late"])

        await asyncio.gather(batcher.submit(["early"]), late())
        await batcher.close()
        return alone_seconds

    assert run(scenario()) < 0.1
    assert sorted(model.calls[-1]) == ["early", "late"]  # the wait budget let the late one join


def test_full_queue_refuses_at_once_and_recovers():
    model = RecordingModel(threading.Event())

    async def scenario():
        batcher, first = await held(
            model, ["a", "b"], max_batch_size=2, max_wait_ms=0, queue_size=2
        )
        second = asyncio.ensure_future(batcher.submit(["c", "d"]))
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        with pytest.raises(Overloaded, match="2 messages are waiting"):
            await batcher.submit(["e"])
        model.gate.set()
        results = await asyncio.gather(first, second)
        assert await batcher.submit(["f"]) == ["F"]
        await batcher.close()
        return results

    assert run(scenario()) == [["A", "B"], ["C", "D"]]


def test_would_refuse_when_a_request_of_the_usual_size_would_not_fit():
    model = RecordingModel(threading.Event())

    async def scenario():
        batcher, first = await held(model, ["a"], max_batch_size=1, max_wait_ms=0, queue_size=2)
        second = asyncio.ensure_future(batcher.submit(["b"]))
        await asyncio.sleep(0.01)
        fits = batcher.would_refuse()  # 1 waiting + the usual 1 fill the 2 places exactly
        third = asyncio.ensure_future(batcher.submit(["c"]))
        await asyncio.sleep(0.01)
        full = batcher.would_refuse()
        model.gate.set()
        results = await asyncio.gather(first, second, third)
        await batcher.close()
        return fits, full, results

    assert run(scenario()) == (False, True, [["A"], ["B"], ["C"]])


def test_messages_that_queued_while_the_model_was_busy_go_at_once():
    model = RecordingModel(threading.Event())

    async def scenario():
        batcher, first = await held(model, ["held"], max_batch_size=32, max_wait_ms=500)
        queued = asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
        await asyncio.sleep(0.01)
        released = time.monotonic()
        model.gate.set()
        await first
        results = await queued
        waited = time.monotonic() - released
        await batcher.close()
        return results, waited

    results, waited = run(scenario())
    assert results == [["A"], ["B"]]
    assert waited < 0.25  # not the 0.5 s wait for company


def test_a_model_failure_fails_its_requests_and_the_batcher_keeps_serving():
    model = RecordingModel(fail_on="boom")

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=32, max_wait_ms=0)
        batcher.start()
        with pytest.raises(RuntimeError, match="model failed"):
            await asyncio.wait_for(batcher.submit(["boom"]), 5)
        result = await batcher.submit(["ok"])
        await batcher.close()
        return result

    assert run(scenario()) == ["OK"]


def test_a_cancelled_request_is_skipped():
    model = RecordingModel(threading.Event())

    async def scenario():
        batcher, first = await held(model, ["first"], max_batch_size=1, max_wait_ms=0)
        gone = asyncio.ensure_future(batcher.submit(["gone"]))
        await asyncio.sleep(0.01)
        gone.cancel()  # the client disconnected while waiting
        model.gate.set()
        assert await first == ["FIRST"]
        assert await batcher.submit(["next"]) == ["NEXT"]
        assert batcher.depth == 0  # the dropped request left the queue's count too
        await batcher.close()

    run(scenario())
    assert ["gone"] not in model.calls


def test_close_finishes_queued_work_then_refuses():
    model = RecordingModel()

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=1, max_wait_ms=0)
        batcher.start()
        pending = asyncio.ensure_future(batcher.submit(["x", "y", "z"]))
        await asyncio.sleep(0)
        await batcher.close()
        assert await pending == ["X", "Y", "Z"]
        with pytest.raises(NotReady):
            await batcher.submit(["late"])

    run(scenario())


def test_a_request_is_answered_when_its_group_is_done_not_the_whole_batch():
    release_long = threading.Event()

    def model(texts):
        if any(len(text) > 50 for text in texts):
            release_long.wait(5)
        return [text.upper() for text in texts]

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=8, max_wait_ms=0, length_cap=512)
        batcher.start()
        short = asyncio.ensure_future(batcher.submit(["short"]))
        long = asyncio.ensure_future(batcher.submit(["x" * 100]))
        assert await asyncio.wait_for(short, 5) == ["SHORT"]  # the long group is still held
        assert not long.done()
        release_long.set()
        assert await long == ["X" * 100]
        await batcher.close()

    run(scenario())


def calls_after_a_busy_model(texts, max_batch_size):
    """Submit each text alone while the model is busy, then free it: each is answered with its
    own result, and the model calls that followed the busy one are returned."""
    model = RecordingModel(threading.Event())

    async def scenario():
        batcher, first = await held(
            model, ["held"], max_batch_size=max_batch_size, max_wait_ms=0, length_cap=512
        )
        queued = [asyncio.ensure_future(batcher.submit([text])) for text in texts]
        await asyncio.sleep(0.01)
        model.gate.set()
        await first
        results = await asyncio.gather(*queued)
        await batcher.close()
        return results

    assert run(scenario()) == [[text.upper()] for text in texts]
    return model.calls[1:]


def test_a_batch_takes_several_model_batches_of_queued_messages_and_cuts_them_by_length():
    texts = [("a" * n) for n in (1, 30, 2, 31, 3, 32, 4, 33, 5, 34)]
    calls = calls_after_a_busy_model(texts, max_batch_size=4)
    # the ten queued messages formed one batch (more than max_batch_size), cut by length and size
    assert [sorted(map(len, call)) for call in calls] == [[1, 2, 3, 4], [5], [30, 31, 32, 33], [34]]


def test_a_batch_takes_at_most_collect_batches_model_batches():
    """What queued beyond COLLECT_BATCHES x max_batch_size messages waits for the next batch."""
    longest = COLLECT_BATCHES + 2
    calls = calls_after_a_busy_model(["a" * n for n in range(longest, 0, -1)], max_batch_size=1)
    # the first COLLECT_BATCHES queued (the longest) form a batch, run shortest first; then 1, 2
    assert [len(call[0]) for call in calls] == [*range(3, longest + 1), 1, 2]


def test_a_batch_formed_while_a_call_runs_goes_to_the_free_thread_on_the_shared_path():
    release_long = threading.Event()
    shared, alone = [], RecordingModel()

    def model(texts):
        if any(len(text) > 50 for text in texts):
            release_long.wait(5)
        shared.append(list(texts))
        return [text.upper() for text in texts]

    async def scenario():
        batcher = MicroBatcher(model, run_alone=alone, max_batch_size=8, max_wait_ms=0, threads=2)
        batcher.start()
        both = asyncio.ensure_future(batcher.submit(["short", "x" * 100]))
        await until(lambda: batcher.in_flight == 1)  # the short group done, the long one held
        following = await asyncio.wait_for(batcher.submit(["next"]), 2)
        release_long.set()
        assert await both == ["SHORT", "X" * 100]
        await batcher.close()
        return following

    assert run(scenario()) == ["NEXT"]
    assert (alone.calls, sorted(shared)) == ([], [["next"], ["short"], ["x" * 100]])


def test_groups_of_one_batch_run_side_by_side_on_the_inference_threads():
    both_running = threading.Barrier(2, timeout=5)  # passes only when two calls overlap

    def model(texts):
        both_running.wait()
        return [text.upper() for text in texts]

    async def scenario():
        batcher = MicroBatcher(model, max_batch_size=8, max_wait_ms=0, length_cap=512, threads=2)
        batcher.start()
        result = await batcher.submit(["short", "x" * 100])  # two length groups
        await batcher.close()
        return result

    assert run(scenario()) == ["SHORT", "X" * 100]


def test_a_batch_alone_on_an_idle_model_runs_on_run_alone_and_busy_ones_do_not():
    alone, shared = RecordingModel(), RecordingModel(gate=threading.Event())

    async def scenario():
        batcher = MicroBatcher(shared, run_alone=alone, max_batch_size=8, max_wait_ms=0, threads=2)
        batcher.start()
        first = await batcher.submit(["lone"])  # idle model, one group: the wide path
        shared.gate.set()
        both = await batcher.submit(["short", "x" * 100])  # two groups: side by side
        await batcher.close()
        return first, both

    first, both = run(scenario())
    assert first == ["LONE"] and both == ["SHORT", "X" * 100]
    assert alone.calls == [["lone"]]
    assert sorted(shared.calls) == [["short"], ["x" * 100]]
