"""Conversations routed in parallel: buckets of sessions routed by worker processes (the local
engine's RoutingPool) or as Ray tasks give the output of one bucket routed in the main process;
a worker or task that dies or fails, and Ctrl-C, leave one error (a bug in a Ray task: its
traceback) and a run that resumes, or with Ray a run that leaves nothing."""

from __future__ import annotations

import io
import os
import random
import traceback
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from support.chat_logs import write_jsonl
from support.conversations import conversations

import kefu.serving.batch.bucket_routing as bucket_routing
import kefu.serving.batch.session_routing as session_routing
from kefu.errors import KefuError
from kefu.serving.batch import ScoreJob, run_local


@pytest.fixture(scope="module")
def many_chats(tmp_path_factory):
    """60 conversations shuffled into one file, with rows routed alone (no session id) and
    rows placed last (no readable turn) among them."""
    rows = conversations(sessions=60, seed=11)
    random.Random(7).shuffle(rows)
    for index in (0, 1):
        rows[index]["session"] = ""
    for index in (2, 3):
        rows[index]["turn"] = "?"
    return write_jsonl(rows, tmp_path_factory.mktemp("many") / "chats.jsonl")


def session_job(source: Path, output: Path, **options) -> ScoreJob:
    """A job over `source` with sessions and turns, in chunks of 4 rows."""
    return ScoreJob(
        inputs=[str(source)],
        output=output,
        chunk_size=4,
        progress=False,
        id_col="msg_id",
        session_col="session",
        turn_col="turn",
        **options,
    )


def routed_by(engine: str, source: Path, output: Path, **options) -> tuple[pa.Table, str]:
    """The output table and the printed lines of one run of `engine`."""
    from kefu.serving.batch.ray_engine import run_ray

    job = session_job(source, output, **options)
    console = Console(file=io.StringIO(), width=200)
    (run_local if engine == "local" else run_ray)(job, console=console)
    assert not Path(f"{output}.partial").exists()
    return pq.read_table(output), console.file.getvalue()


@pytest.mark.parametrize("engine", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_buckets_routed_at_once_give_the_output_of_one_bucket_routed_here(
    tmp_path, bundle, policy, many_chats, monkeypatch, request, engine
):
    """Many buckets, routed by two worker processes (local) or as Ray tasks two at a time: the
    same table, row for row, and the same summary as one bucket routed in this process."""
    from kefu.serving.batch import worker_pools

    if engine == "ray":
        request.getfixturevalue("ray_instance")
    reference, printed = routed_by(
        "local", many_chats, tmp_path / "serial.parquet", bundle=bundle, policy=policy
    )
    assert "conversations 60 " in printed and "2 rows without a session id" in printed, printed
    assert "2 rows with no readable 'turn'" in printed, printed
    buckets: list[int] = []
    route = session_routing.SessionRouter._route

    def counted(self, count):
        buckets.append(count)
        return route(self, count)

    monkeypatch.setattr(session_routing.SessionRouter, "_route", counted)
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    spawned: list[int] = []
    spawn = worker_pools.RoutingPool._spawn
    monkeypatch.setattr(
        worker_pools.RoutingPool,
        "_spawn",
        lambda self, workers: spawned.append(workers) or spawn(self, workers),
    )
    if engine == "ray":  # Ray routes in tasks, never here
        from kefu.serving.batch import ray_routing

        monkeypatch.setattr(ray_routing, "route_serially", None)
    table, printed_now = routed_by(
        engine, many_chats, tmp_path / "parallel.parquet", bundle=bundle, policy=policy, workers=2
    )
    assert buckets[0] >= 30 and buckets[0] % 2 == 0, buckets  # a multiple of the workers
    assert spawned == ([2] if engine == "local" else [])
    assert table.equals(reference)  # schema, row order, scores, routes, sessions and turns
    assert printed_now == printed


def test_buckets_are_at_most_bucket_rows_and_a_multiple_of_the_workers_once_worth_it(
    monkeypatch,
):
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 50_000)
    monkeypatch.setattr(session_routing, "MIN_SPLIT_ROWS", 20_000)
    count = session_routing.bucket_count
    assert [count(0), count(1), count(50_000), count(50_001)] == [1, 1, 1, 2]
    assert count(39_999, workers=2) == 1  # too few rows to pay for a second process
    assert count(40_000, workers=2) == 2  # two halves, routed at once
    assert count(60_000, workers=4) == 3  # three buckets worth their own process
    assert count(120_000, workers=2) == 4  # not 3: the two workers finish together
    assert count(10_000_000, workers=16) == 208


class _DiesInTheWorker(bucket_routing.BucketTask):
    """A bucket whose worker process dies as it takes the bucket, as one the OOM killer ends."""

    def __reduce__(self):
        return os._exit, (9,)


class _FailsInTheWorker(bucket_routing.BucketTask):
    """A bucket whose routing raises in the worker (no policy to route with)."""

    def __reduce__(self):
        return bucket_routing.BucketTask, (self.keys, self.decided, self.spec, None)


class _CannotWriteInTheWorker(bucket_routing.BucketTask):
    """A bucket whose decisions cannot be written (a folder that is not there, as a full disk)."""

    def __reduce__(self):
        decided = str(Path(self.decided).parent / "gone" / "decided.parquet")
        return bucket_routing.BucketTask, (self.keys, decided, self.spec, self.policy)


def routed_as(kind: type) -> Callable:
    """`SessionRouter._tasks` giving tasks of `kind`."""
    tasks = session_routing.SessionRouter._tasks
    return lambda self, buckets: [kind(**vars(task)) for task in tasks(self, buckets)]


@pytest.mark.parametrize(
    ("task", "error"),
    [
        (
            _DiesInTheWorker,
            "a session routing worker process died (out of memory or killed?); committed chunks "
            "are kept: rerun with --resume, with fewer --workers",
        ),
        # a bug in the worker keeps its traceback: test_batch_routing_workers.py
        (  # as when the main process routes: the output named, and what to do
            _CannotWriteInTheWorker,
            "cannot write {output}: No such file or directory; fix the cause, then rerun the same "
            "command with --resume",
        ),
    ],
)
def test_a_routing_worker_that_dies_or_fails_is_one_error_and_resume_finishes(
    tmp_path, bundle, policy, many_chats, monkeypatch, task, error
):
    reference, _ = routed_by(
        "local", many_chats, tmp_path / "serial.parquet", bundle=bundle, policy=policy
    )
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    with monkeypatch.context() as patch:
        patch.setattr(session_routing.SessionRouter, "_tasks", routed_as(task))
        with pytest.raises(KefuError) as raised:
            run_local(job)
    message = str(raised.value)
    assert message.startswith(error.format(output=output)) and "\n" not in message, message
    assert not output.exists() and Path(f"{output}.partial", "state.json").exists()
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert summary.rows_this_run == 0  # only the routing and the merge ran again
    assert pq.read_table(output).equals(reference)


def test_ctrl_c_while_buckets_are_routed_stops_the_workers_and_resume_finishes(
    tmp_path, bundle, policy, many_chats, monkeypatch
):
    import multiprocessing

    from kefu.serving.batch import worker_pools

    reference, _ = routed_by(
        "local", many_chats, tmp_path / "serial.parquet", bundle=bundle, policy=policy
    )
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    checked = worker_pools.RoutingPool._checked

    def interrupted(self, future):
        checked(self, future)
        raise KeyboardInterrupt  # after the first bucket, with the others being routed

    with monkeypatch.context() as patch:
        patch.setattr(worker_pools.RoutingPool, "_checked", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_local(job)
    assert multiprocessing.active_children() == []  # the routing workers were stopped
    assert not output.exists() and Path(f"{output}.partial", "state.json").exists()
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert summary.rows_this_run == 0
    assert pq.read_table(output).equals(reference)


@pytest.mark.ray
@pytest.mark.parametrize(
    ("task", "error"),
    [
        # Ray retries a task whose worker died, then gives up
        (_DiesInTheWorker, "the Ray run failed: WorkerCrashedError: The worker died"),
        # a bug in the task keeps its traceback: the test below
        (
            _CannotWriteInTheWorker,
            "cannot write {output}: No such file or directory; fix the cause, then rerun the same "
            "command",
        ),
    ],
)
def test_a_ray_routing_task_that_dies_or_fails_is_one_error(
    tmp_path, bundle, policy, many_chats, monkeypatch, ray_instance, task, error
):
    from kefu.serving.batch.ray_engine import run_ray

    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    monkeypatch.setattr(session_routing.SessionRouter, "_tasks", routed_as(task))
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    with pytest.raises(KefuError) as raised:
        run_ray(job, console=Console(file=io.StringIO()))
    message = str(raised.value)
    assert message.startswith(error.format(output=output)) and "\n" not in message, message
    assert not output.exists() and not Path(f"{output}.partial").exists()


@pytest.mark.ray
def test_a_bug_in_a_ray_routing_task_keeps_the_tasks_traceback_with_what_to_do(
    tmp_path, bundle, policy, many_chats, monkeypatch, ray_instance
):
    from kefu.serving.batch.ray_engine import run_ray
    from kefu.serving.batch.ray_errors import RAY_TASK_FAILED

    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    monkeypatch.setattr(session_routing.SessionRouter, "_tasks", routed_as(_FailsInTheWorker))
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    with pytest.raises(TypeError, match="policy must be a RoutingPolicy") as raised:
        run_ray(job, console=Console(file=io.StringIO()))
    printed = "".join(traceback.format_exception(raised.value))
    # the task's own frames, down to the routing code that raised, then the note
    assert "ray::route_bucket()" in printed and "in route_bucket" in printed, printed
    assert printed.rstrip().endswith(RAY_TASK_FAILED), printed
    assert not output.exists() and not Path(f"{output}.partial").exists()


@pytest.mark.ray
def test_ctrl_c_while_ray_routes_cancels_the_tasks_out_and_removes_the_staging(
    tmp_path, bundle, policy, many_chats, monkeypatch, ray_instance
):
    import ray

    from kefu.serving.batch import ray_routing
    from kefu.serving.batch.ray_engine import run_ray

    cancelled: list[object] = []

    class Interrupting:
        """`ray` as the engine sees it, with Ctrl-C pressed during the second wait for a
        routing task."""

        waits = 0

        def __getattr__(self, name: str):
            return getattr(ray, name)

        def wait(self, refs, **options):
            self.waits += 1
            if self.waits == 2:
                raise KeyboardInterrupt
            return ray.wait(refs, **options)

        def cancel(self, ref, **options):
            cancelled.append(ref)
            return ray.cancel(ref, **options)

    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    monkeypatch.setattr(ray_routing, "ray", Interrupting())
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    with pytest.raises(KeyboardInterrupt):
        run_ray(job, console=Console(file=io.StringIO()))
    assert len(cancelled) == 2  # the two tasks out when Ctrl-C came
    assert not output.exists() and not Path(f"{output}.partial").exists()
