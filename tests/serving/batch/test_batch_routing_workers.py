"""`kefu score --workers N`: what a scoring or session routing worker raised reaches the user
as the CLI treats any error: a user's (kefu's own, a refused read or write) as one line, a bug with its
traceback, the worker's included, never cut to one line that hides where it happened."""

from __future__ import annotations

import random
import subprocess
import sys
import traceback
from concurrent.futures import Future
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.chat_logs import write_jsonl
from support.conversations import conversations

import kefu.serving.batch.bucket_routing as bucket_routing
import kefu.serving.batch.session_routing as session_routing
from kefu.errors import EXIT_FAILED, DataError, KefuError
from kefu.serving.batch import ScoreJob, run_local, worker_pools
from kefu.serving.batch.worker_pools import ROUTER_FAILED, SCORER_FAILED, RoutingPool

# Run in a separate process: `kefu score`, with every bucket's policy lost on its way to the
# worker (a bug: TypeError) or its decisions file in a folder that is not there (a write error).
CLI_WITH_BROKEN_TASKS = """
import sys
import kefu.serving.batch.session_routing as session_routing
from pathlib import Path
from kefu.cli.main import app
from kefu.serving.batch.bucket_routing import BucketTask


class LosesItsPolicy(BucketTask):
    def __reduce__(self):
        return BucketTask, (self.keys, self.decided, self.spec, None)


class CannotWrite(BucketTask):
    def __reduce__(self):
        decided = str(Path(self.decided).parent / "gone" / "decided.parquet")
        return BucketTask, (self.keys, decided, self.spec, self.policy)


kind = {"bug": LosesItsPolicy, "write": CannotWrite}[sys.argv[1]]
tasks = session_routing.SessionRouter._tasks
session_routing.BUCKET_ROWS = 5
session_routing.SessionRouter._tasks = lambda self, n: [kind(**vars(t)) for t in tasks(self, n)]
app(sys.argv[2:], prog_name="kefu")
"""


class _LosesItsPolicy(bucket_routing.BucketTask):
    """A bucket whose routing raises a bug in the worker (no policy to route with)."""

    def __reduce__(self):
        return bucket_routing.BucketTask, (self.keys, self.decided, self.spec, None)


@pytest.fixture(scope="module")
def chats(tmp_path_factory):
    rows = conversations(sessions=30, seed=11)
    random.Random(7).shuffle(rows)
    return write_jsonl(rows, tmp_path_factory.mktemp("chats") / "chats.jsonl")


def session_job(source: Path, output: Path, bundle: Path, **options) -> ScoreJob:
    return ScoreJob(
        inputs=[str(source)],
        output=output,
        bundle=bundle,
        chunk_size=4,
        progress=False,
        id_col="msg_id",
        session_col="session",
        turn_col="turn",
        workers=2,
        **options,
    )


def test_a_bug_in_a_routing_worker_keeps_the_workers_traceback_and_resume_finishes(
    tmp_path, tiny_bundle, chats, monkeypatch
):
    output = tmp_path / "out.parquet"
    job = session_job(chats, output, tiny_bundle)
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    tasks = session_routing.SessionRouter._tasks
    with monkeypatch.context() as patch:
        patch.setattr(
            session_routing.SessionRouter,
            "_tasks",
            lambda self, n: [_LosesItsPolicy(**vars(task)) for task in tasks(self, n)],
        )
        with pytest.raises(TypeError, match="policy must be a RoutingPolicy") as raised:
            run_local(job)
    printed = "".join(traceback.format_exception(raised.value))
    # the worker's own frames, down to the routing code that raised, then the note
    assert "_RemoteTraceback" in printed and "in route_bucket" in printed, printed
    assert printed.rstrip().endswith(ROUTER_FAILED), printed
    assert not output.exists() and Path(f"{output}.partial", "state.json").exists()
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert summary.rows_this_run == 0  # only the routing and the merge ran again
    assert pq.read_table(output).num_rows == summary.scored


def scoring_job(chats: Path, output: Path, bundle: Path) -> ScoreJob:
    """Two scoring workers, four messages a chunk, no conversations."""
    return ScoreJob(
        inputs=[str(chats)],
        output=output,
        bundle=bundle,
        chunk_size=4,
        progress=False,
        id_col="msg_id",
        workers=2,
    )


def test_a_bug_in_a_scoring_worker_keeps_the_workers_traceback_and_a_note(
    tmp_path, tiny_bundle, chats, monkeypatch
):
    from support.worker_bugs import score_with_a_bug

    output = tmp_path / "out.parquet"
    monkeypatch.setattr(worker_pools, "_score_in_worker", score_with_a_bug)
    with pytest.raises(TypeError, match="a bug while scoring 4 texts") as raised:
        run_local(scoring_job(chats, output, tiny_bundle))
    printed = "".join(traceback.format_exception(raised.value))
    assert "_RemoteTraceback" in printed and "in score_with_a_bug" in printed, printed
    assert printed.rstrip().endswith(SCORER_FAILED), printed
    assert not output.exists()


def test_an_oserror_in_a_scoring_worker_is_one_line_naming_the_file(
    tmp_path, tiny_bundle, chats, monkeypatch
):
    """A read or write the system refused is the user's to act on, as with --engine ray."""
    from support.worker_bugs import score_with_a_refused_read

    output = tmp_path / "out.parquet"
    monkeypatch.setattr(worker_pools, "_score_in_worker", score_with_a_refused_read)
    with pytest.raises(KefuError) as raised:
        run_local(scoring_job(chats, output, tiny_bundle))
    assert type(raised.value) is KefuError and raised.value.exit_code == EXIT_FAILED
    assert str(raised.value) == (
        "scoring failed: PermissionError: [Errno 13] Permission denied: "
        "'/srv/kefu/lexicon.txt'; committed chunks are kept: once fixed, rerun with --resume"
    )
    assert raised.value.__cause__ is None and not getattr(raised.value, "__notes__", None)
    assert not output.exists() and Path(f"{output}.partial", "state.json").exists()


@pytest.mark.parametrize("broken", ["bug", "write"])
def test_kefu_score_shows_a_workers_bug_with_its_traceback_and_a_write_error_as_one_line(
    tmp_path, tiny_bundle, chats, broken
):
    output = tmp_path / "out.parquet"
    done = subprocess.run(
        [sys.executable, "-c", CLI_WITH_BROKEN_TASKS, broken, "score", str(chats)]
        + ["-o", str(output), "--bundle", str(tiny_bundle), "--id-col", "msg_id"]
        + ["--session-col", "session", "--turn-col", "turn", "--chunk-size", "4"]
        + ["--workers", "2", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stderr.strip().splitlines()
    if broken == "bug":
        assert done.returncode == 1, done.stderr
        # the worker's traceback first, down to where it raised, then this process's
        assert lines[0].startswith("concurrent.futures.process._RemoteTraceback"), done.stderr
        assert "in route_bucket" in done.stderr and "in _checked" in done.stderr
        assert lines[-2].startswith("TypeError: policy must be a RoutingPolicy")
        assert lines[-1] == ROUTER_FAILED
    else:
        assert done.returncode == 1, done.stderr
        assert len(lines) == 1 and lines[0].startswith(f"kefu score: cannot write {output}: ")


def test_a_users_error_raised_in_a_worker_is_raised_as_it_is():
    future: Future = Future()
    error = DataError("the staged keys cannot be read", file="keys.parquet")
    future.set_exception(error)
    with pytest.raises(DataError) as raised:
        RoutingPool(2)._checked(future)
    assert raised.value is error and not getattr(error, "__notes__", None)
