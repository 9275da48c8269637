"""Resumability: a real `kefu score` process killed midway, stopped by Ctrl-C, left by a dead
worker or by a full disk, then `--resume`: every row once, as one uninterrupted run gives it."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.chat_logs import chat_log, expected_bad, write_jsonl

import kefu.serving.batch.staging as staging_module
import kefu.serving.batch.writers as writers
from kefu.errors import KefuError, OutputError
from kefu.serving.batch import ScoreJob, run_local
from kefu.serving.batch.job import ReadCounts
from kefu.serving.batch.worker_pools import ScorerPool

ROWS, CHUNK = 8_000, 200
CHUNKS = ROWS // CHUNK


@pytest.fixture(scope="module")
def log_and_reference(tmp_path_factory, tiny_bundle):
    """The input log and the output of one uninterrupted run over it."""
    folder = tmp_path_factory.mktemp("resume")
    source = write_jsonl(chat_log(ROWS, seed=7), folder / "log.jsonl")
    reference = folder / "reference.parquet"
    run_local(
        ScoreJob(
            inputs=[str(source)],
            output=reference,
            bundle=tiny_bundle,
            id_col="msg_id",
            chunk_size=CHUNK,
            progress=False,
        )
    )
    return source, reference


def kefu_score(source: Path, output: Path, bundle: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "kefu.cli.main",
        "score",
        str(source),
        "-o",
        str(output),
        "--bundle",
        str(bundle),
    ]
    command += ["--id-col", "msg_id", "--chunk-size", str(CHUNK), "--no-progress", *extra]
    # a session of its own: the kill reaches the worker processes too, as a crash would. Ctrl-C
    # as a terminal sends it: a test run started in the background by a shell without job
    # control (`make test &` in a script) inherits SIGINT ignored, and a Python started so
    # keeps ignoring it, where a user's kefu score in a terminal would stop
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def committed_chunks(output: Path) -> int:
    try:
        return json.loads((Path(f"{output}.partial") / "state.json").read_text())[
            "committed_chunks"
        ]
    except (OSError, ValueError, KeyError):
        return 0


def stop_after_commits(process: subprocess.Popen, output: Path, chunks: int, sig: int) -> None:
    deadline = time.monotonic() + 60
    while committed_chunks(output) < chunks:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no chunk committed within 60 s"
        time.sleep(0.02)
    os.killpg(process.pid, sig)


def assert_same_as_reference(output: Path, reference: Path, stdout: str) -> None:
    table, expected = pq.read_table(output), pq.read_table(reference)
    ids = table.column("msg_id").to_pylist()
    assert len(ids) == len(set(ids)) == ROWS - expected_bad(ROWS)
    assert table.equals(expected)  # same rows, same order, bit-identical predictions
    assert Path(f"{output}.rejects.jsonl").read_text().splitlines() == [
        line.replace("reference.parquet", output.name)
        for line in Path(f"{reference}.rejects.jsonl").read_text().splitlines()
    ]
    bad = expected_bad(ROWS)
    assert f"rows read {ROWS} = scored {ROWS - bad} + rejected {bad}" in stdout


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigkill_midway_then_resume_gives_every_row_exactly_once(
    tmp_path, tiny_bundle, log_and_reference, workers
):
    source, reference = log_and_reference
    output = tmp_path / "out.parquet"
    process = kefu_score(source, output, tiny_bundle, "--workers", workers)
    stop_after_commits(process, output, 2, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    done_before = committed_chunks(output)
    assert 2 <= done_before < CHUNKS and not output.exists()  # killed midway, nothing final

    resumed = kefu_score(source, output, tiny_bundle, "--workers", workers, "--resume")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert f"resuming after {done_before} committed chunks" in stderr
    assert_same_as_reference(output, reference, stdout)
    assert not Path(f"{output}.partial").exists()


def test_ctrl_c_stops_cleanly_and_resume_finishes(tmp_path, tiny_bundle, log_and_reference):
    source, reference = log_and_reference
    for attempt in range(3):
        output = tmp_path / f"out{attempt}.parquet"
        process = kefu_score(source, output, tiny_bundle, "--workers", "2")
        stop_after_commits(process, output, 1, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        # on a loaded machine the run can finish between the first commit and the signal
        # (the tiny model scores the rest in under a second): then interrupt another run
        if not (process.returncode == 0 and output.exists()):
            break
    assert process.returncode == 130, stderr
    assert "interrupted: committed chunks are kept; rerun with --resume to continue" in stderr
    assert "Traceback" not in stderr
    resumed = kefu_score(source, output, tiny_bundle, "--resume")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert_same_as_reference(output, reference, stdout)


def spawned_workers(parent: int) -> list[int]:
    """Pids of the multiprocessing workers among the children of `parent`."""
    workers = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
            workers.append(int(entry.name))
    return workers


def test_a_killed_worker_stops_the_run_cleanly_and_resume_finishes(
    tmp_path, tiny_bundle, log_and_reference
):
    source, reference = log_and_reference
    output = tmp_path / "out.parquet"
    process = kefu_score(source, output, tiny_bundle, "--workers", "2")
    stop_after_commits(process, output, 1, 0)  # signal 0: only wait for the first commit
    os.kill(spawned_workers(process.pid)[0], signal.SIGKILL)  # the OOM killer's way
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert (
        stderr.startswith("kefu score: a scoring worker process died") and "Traceback" not in stderr
    )
    resumed = kefu_score(source, output, tiny_bundle, "--resume")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert_same_as_reference(output, reference, stdout)


def test_a_wait_for_a_chunk_ends_when_a_worker_died_though_the_pool_never_noticed(
    tmp_path, tiny_bundle
):
    """A worker killed while it wrote a result leaves half a message in the pool's result pipe;
    the pool's manager thread then waits for the rest forever and never breaks the pool (the
    test above hung that way about once in five runs on a busy machine). The wait for a chunk
    must see the dead worker itself. The pool here is a stand-in holding one real process that
    has ended; the chunk's future never completes, as in that hang."""
    pool = ScorerPool(ScoreJob(inputs=[], output=tmp_path / "o.parquet", bundle=tiny_bundle))
    ended = get_context("spawn").Process(target=os.getpid)
    ended.start()
    ended.join()
    pool.executor = SimpleNamespace(_processes={ended.pid: ended})  # type: ignore[assignment]
    outcome: dict[str, str] = {}

    def wait_for_a_chunk() -> None:
        try:
            pool._result(Future())
        except KefuError as error:
            outcome["error"] = str(error)

    waiter = threading.Thread(target=wait_for_a_chunk, daemon=True)  # a hang fails, not blocks
    waiter.start()
    waiter.join(timeout=10)
    assert outcome.get("error", "").startswith("a scoring worker process died"), outcome


def score_job(source: Path, output: Path, bundle: Path) -> ScoreJob:
    return ScoreJob(
        inputs=[str(source)],
        output=output,
        bundle=bundle,
        id_col="msg_id",
        chunk_size=CHUNK,
        progress=False,
    )


def no_space_after(calls: int, real, seen: list):
    """`real`, except that call number `calls` fails as a full disk does (errno 28)."""

    def fake(*args, **kwargs):
        seen.append(args)
        if len(seen) == calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    return fake


def test_a_full_disk_during_the_merge_is_one_error_and_resume_does_not_rescore(
    tmp_path, tiny_bundle, log_and_reference, monkeypatch
):
    source, reference = log_and_reference
    output = tmp_path / "out.parquet"
    job = score_job(source, output, tiny_bundle)
    partial: list[bool] = []
    fail_on_third = no_space_after(3, writers.conform, seen := [])

    def conform_then_fail(table, schema):
        if len(seen) == 2:  # the writer has opened (and started) out.parquet.tmp by now
            partial.append(Path(f"{output}.tmp").exists())
        return fail_on_third(table, schema)

    with monkeypatch.context() as patch:
        patch.setattr(writers, "conform", conform_then_fail)
        with pytest.raises(OutputError) as caught:
            run_local(job)
    assert str(caught.value) == (
        f"cannot write {output}: No space left on device; free some space, then rerun the same "
        "command with --resume (committed chunks are kept)"
    )
    assert partial == [True] and not Path(f"{output}.tmp").exists() and not output.exists()
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert summary.rows_this_run == 0  # every chunk was already committed
    assert_same_as_reference(output, reference, "\n".join(summary.lines()))


def test_a_full_disk_during_a_commit_keeps_the_committed_chunks(
    tmp_path, tiny_bundle, log_and_reference, monkeypatch
):
    source, reference = log_and_reference
    output = tmp_path / "out.parquet"
    job = score_job(source, output, tiny_bundle)
    staging = Path(f"{output}.partial")
    with monkeypatch.context() as patch:
        seen: list[tuple] = []
        # fsync calls: state.json at the start, then per chunk part, rejects (if any), state
        patch.setattr(staging_module.os, "fsync", no_space_after(9, os.fsync, seen))
        with pytest.raises(OutputError, match=r"cannot write .*out\.parquet\.partial/.*: No space"):
            run_local(job)
    assert list(staging.glob("*.tmp")) == []
    done = committed_chunks(output)
    assert 1 <= done < CHUNKS
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert (summary.resumed_from_chunk, summary.rows_this_run) == (done, ROWS - done * CHUNK)
    assert_same_as_reference(output, reference, "\n".join(summary.lines()))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_in_a_real_process_then_resume(tmp_path, tiny_bundle, log_and_reference):
    """The merge writes out.parquet.tmp; made a link to /dev/full, every write there is ENOSPC."""
    source, reference = log_and_reference
    output = tmp_path / "out.parquet"
    tmp = Path(f"{output}.tmp")
    tmp.symlink_to("/dev/full")
    process = kefu_score(source, output, tiny_bundle, "--workers", "1")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert stderr.splitlines() == [
        f"kefu score: cannot write {output}: No space left on device; free some space, then rerun "
        "the same command with --resume (committed chunks are kept)"
    ]
    assert not tmp.is_symlink() and not output.exists()  # the temp file is gone
    assert committed_chunks(output) == CHUNKS
    resumed = kefu_score(source, output, tiny_bundle, "--resume")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert f"resuming after {CHUNKS} committed chunks" in stderr
    assert_same_as_reference(output, reference, stdout)


def test_chunks_are_committed_in_order_and_only_committed_files_are_merged(tmp_path):
    staging = staging_module.Staging(tmp_path / "out.parquet.partial")
    state = staging.open({"run": 1}, resume=False, fresh=False)
    table = pa.table({"text": ["在吗"]})
    staging.commit(state, 0, ReadCounts("a.csv", 2, 3, 2), table, [{"reason": "empty_text"}])
    with pytest.raises(RuntimeError, match=r"^chunk 2 committed out of order \(next is 1\)$"):
        staging.commit(state, 2, ReadCounts("a.csv", 1, 1, 1), table, [])
    # what a run killed before its commit log moved leaves: chunk 1's files, not committed
    pq.write_table(table, staging.part_path(1))
    staging.rejects_path(1).write_text("{}\n")
    assert staging.parts(state) == [staging.part_path(0)]
    assert staging.reject_files(state) == [staging.rejects_path(0)]
