"""What `kefu score --engine ray` raises for an error that came through Ray
(kefu/serving/batch/ray_errors.py): the user's errors (kefu's own, OSError) and Ray's own
failures as one line, a bug with the remote traceback and a note, as the local engine does."""

from __future__ import annotations

import io
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from rich.console import Console
from support.chat_logs import chat_log, write_csv, write_jsonl
from support.conversations import conversations
from support.scoring_runs import kefu_lines

from kefu.errors import DataError, KefuError
from kefu.serving.batch import ScoreJob

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

from ray.exceptions import RayTaskError, WorkerCrashedError  # noqa: E402

from kefu.serving.batch import ray_engine  # noqa: E402
from kefu.serving.batch.ray_chunks import ScoringActor  # noqa: E402
from kefu.serving.batch.ray_errors import RAY_TASK_FAILED, reported  # noqa: E402

REMOTE = "Traceback (most recent call last):\n  File ...\nkefu.errors.DataError: ..."
RAY_ADVICE = (
    "\nFailed to apply UDF transform after 1/1 attempts (total backoff 0.0s).\nTo change retry "
    "attempts, backoff, or which errors are retried, configure "
    "`ray.data.DataContext.get_current()` (`retried_io_errors` for I/O; `retried_map_errors` and "
    "`max_map_retries` for any task) if you believe this to be transient."
)
BROKEN_FILE = "cannot decompress (gzip): Not a gzipped file (b'ga')"


def in_task(error: Exception) -> Exception:
    """`error` as the driver receives it from a Ray task."""
    return RayTaskError("ReadChunk", REMOTE, error).as_instanceof_cause()


def test_kefus_error_in_a_task_is_its_own_line_without_rays_retry_advice():
    error = DataError(BROKEN_FILE, file="log.jsonl.gz")
    wrapped = in_task(error)
    # why it must be unwrapped: Ray's wrapper is a DataError too, whose text is the traceback
    assert isinstance(wrapped, DataError) and "  File ...\n" in str(wrapped)
    assert reported(wrapped) is error
    error.args = (error.args[0] + RAY_ADVICE,)  # as Ray Data leaves it after its last attempt
    assert str(reported(in_task(error))) == f"file log.jsonl.gz: {BROKEN_FILE}"


def test_a_refused_read_or_write_and_rays_own_failures_are_one_line():
    full = OSError(28, "No space left on device")
    assert str(reported(in_task(full))) == (
        "the Ray run failed: OSError: [Errno 28] No space left on device"
    )
    died = WorkerCrashedError()
    assert str(reported(died)).startswith("the Ray run failed: WorkerCrashedError: The worker")
    assert "\n" not in str(reported(died))
    lost = RuntimeError("the run stopped")
    lost.__cause__ = died
    assert str(reported(lost)) == str(reported(died))


def test_a_bug_in_a_task_keeps_its_traceback_with_a_note_and_one_in_the_driver_is_kept_as_is():
    crash = in_task(ValueError("boom"))
    assert reported(crash) is crash and crash.__notes__ == [RAY_TASK_FAILED]
    assert "  File ...\n" in str(crash)  # the task's own traceback, printed with the error
    driver = RuntimeError("stopped")
    assert reported(driver) is driver and not getattr(driver, "__notes__", None)


class _BuggyActor(ScoringActor):
    """A scoring actor with a bug (runs in Ray's worker: pickled by value, see below)."""

    def __call__(self, batch):
        return {}["no such key"]


class _ActorOnBrokenFile(ScoringActor):
    """A scoring actor that raises kefu's error for its chunk."""

    def __call__(self, batch):
        raise DataError(BROKEN_FILE, file="log.jsonl.gz")


@pytest.fixture()
def actor_job(tmp_path, tiny_bundle, monkeypatch, ray_instance):
    # Ray's workers cannot import this test module: its actors travel by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    source = write_csv(chat_log(20, bad=False), tmp_path / "log.csv")
    yield ScoreJob(
        inputs=[str(source)], output=tmp_path / "out.parquet", bundle=tiny_bundle, progress=False
    )
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.ray
def test_a_bug_in_a_scoring_actor_shows_the_actors_traceback_and_what_to_do(actor_job, monkeypatch):
    monkeypatch.setattr(ray_engine, "ScoringActor", _BuggyActor)
    with pytest.raises(KeyError) as raised:
        ray_engine.run_ray(actor_job, console=Console(file=io.StringIO()))
    printed = "".join(traceback.format_exception(raised.value))
    # the actor's own frame, where the bug is, then the note
    assert "MapBatches(_BuggyActor)" in printed and "in __call__" in printed, printed
    assert 'return {}["no such key"]' in printed, printed
    assert printed.rstrip().endswith(RAY_TASK_FAILED), printed
    assert not actor_job.output.exists() and not Path(f"{actor_job.output}.partial").exists()


@pytest.mark.ray
def test_kefus_error_in_a_scoring_actor_is_its_one_line(actor_job, monkeypatch):
    # Ray Data used to wrap it in a UserCodeException: "UDF failed to process a data block."
    monkeypatch.setattr(ray_engine, "ScoringActor", _ActorOnBrokenFile)
    with pytest.raises(KefuError) as raised:
        ray_engine.run_ray(actor_job, console=Console(file=io.StringIO()))
    assert type(raised.value) is DataError
    assert str(raised.value) == f"file log.jsonl.gz: {BROKEN_FILE}"
    assert not Path(f"{actor_job.output}.partial").exists()


# `kefu score --engine ray` in a separate process, with every bucket's policy lost on its way
# to the routing task (a bug: TypeError in the task)
CLI_WITH_A_BUGGY_TASK = """
import subprocess
import sys
import kefu.serving.batch.session_routing as session_routing
from kefu.cli.main import app
from kefu.serving.batch.bucket_routing import BucketTask


class LosesItsPolicy(BucketTask):
    def __reduce__(self):
        return BucketTask, (self.keys, self.decided, self.spec, None)


tasks = session_routing.SessionRouter._tasks
session_routing.BUCKET_ROWS = 5
session_routing.SessionRouter._tasks = lambda self, n: [LosesItsPolicy(**vars(t)) for t in tasks(self, n)]
app(sys.argv[1:], prog_name="kefu")
"""


@pytest.mark.ray
def test_kefu_score_prints_a_ray_tasks_bug_with_its_traceback_and_the_note(tmp_path, tiny_bundle):
    chats = write_jsonl(conversations(sessions=30, seed=11), tmp_path / "chats.jsonl")
    output = tmp_path / "out.parquet"
    done = subprocess.run(
        [sys.executable, "-c", CLI_WITH_A_BUGGY_TASK, "score", str(chats), "-o", str(output)]
        + ["--bundle", str(tiny_bundle), "--id-col", "msg_id", "--engine", "ray"]
        + ["--session-col", "session", "--turn-col", "turn", "--chunk-size", "4"]
        + ["--workers", "2", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = kefu_lines(done.stderr)
    assert done.returncode == 1, done.stderr
    assert "kefu score:" not in done.stderr  # not cut to one line
    # this process's frames, then the task's (Ray's text of the error), down to where it raised
    assert lines[0] == "Traceback (most recent call last):", done.stderr
    assert "ray::route_bucket()" in done.stderr and "in route_bucket" in done.stderr
    assert lines[-2].startswith("TypeError: policy must be a RoutingPolicy"), done.stderr
    assert lines[-1] == RAY_TASK_FAILED
    assert not output.exists() and not Path(f"{output}.partial").exists()
