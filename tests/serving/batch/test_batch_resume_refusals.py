"""What `--resume` refuses: a run whose input, options, policy, bundle, engine, kefu version or
commit log changed since it stopped would mix two runs in one output, so each is named; and a
resume with nothing unfinished to continue says so."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.chat_logs import chat_log, write_jsonl
from typer.testing import CliRunner

import kefu
from kefu.cli.main import app
from kefu.errors import ConfigError
from kefu.serving.batch import ScoreJob, run_local
from kefu.serving.batch.plan import plan_run
from kefu.serving.batch.staging import STATE_VERSION


def small_job(tmp_path, tiny_bundle, rows):
    """A job over a small chat log, and its staging folder (not created)."""
    source = write_jsonl(chat_log(rows), tmp_path / "log.jsonl")
    output = tmp_path / "out.parquet"
    job = ScoreJob(
        inputs=[str(source)], output=output, bundle=tiny_bundle, chunk_size=10, progress=False
    )
    return job, Path(f"{output}.partial")


def test_resume_refuses_a_changed_input(tmp_path, tiny_bundle):
    job, staging = small_job(tmp_path, tiny_bundle, 50)
    run_local(job)
    staging.mkdir()  # pretend a run stopped before its first commit, then the input changed
    state = {"version": STATE_VERSION, "fingerprint": {"inputs": []}}
    (staging / "state.json").write_text(json.dumps(state))
    with pytest.raises(
        ConfigError, match="cannot resume: the run changed since it was interrupted"
    ):
        run_local(ScoreJob(**{**job.__dict__, "resume": True}))


def test_resume_refuses_a_changed_text_limit(tmp_path, tiny_bundle):
    job, staging = small_job(tmp_path, tiny_bundle, 30)
    staging.mkdir()  # a run that stopped before its first commit, under the default limit
    fingerprint = plan_run(job, "local").fingerprint
    (staging / "state.json").write_text(
        json.dumps({"version": STATE_VERSION, "fingerprint": fingerprint})
    )
    with pytest.raises(ConfigError, match="cannot resume: the run changed"):
        run_local(ScoreJob(**{**job.__dict__, "resume": True, "max_text_chars": 10}))


def test_resume_refuses_a_changed_policy_file(tmp_path, tiny_bundle):
    """Routes of committed chunks came from the policy as it was: an edited file at the same
    path would mix two policies in one output."""
    job, staging = small_job(tmp_path, tiny_bundle, 30)
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules: {long_conversation: {max_turns: 5}}\n", encoding="utf-8")
    job = ScoreJob(**{**job.__dict__, "policy": policy})
    staging.mkdir()  # a run that stopped before its first commit
    fingerprint = plan_run(job, "local").fingerprint
    (staging / "state.json").write_text(
        json.dumps({"version": STATE_VERSION, "fingerprint": fingerprint})
    )
    policy.write_text("rules: {long_conversation: {max_turns: 9}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot resume: the run changed .*policy: was"):
        run_local(ScoreJob(**{**job.__dict__, "resume": True}))


def test_resume_refuses_a_run_started_by_another_kefu_version(tmp_path, tiny_bundle, monkeypatch):
    """Committed chunks were scored by the code that started the run: resuming after an upgrade
    would mix two versions' outputs in one file."""
    job, staging = small_job(tmp_path, tiny_bundle, 30)
    monkeypatch.setattr("kefu.__version__", "0.0.9")
    fingerprint = plan_run(job, "local").fingerprint
    monkeypatch.undo()
    staging.mkdir()  # a run that stopped before its first commit, under kefu 0.0.9
    (staging / "state.json").write_text(
        json.dumps({"version": STATE_VERSION, "fingerprint": fingerprint})
    )
    with pytest.raises(ConfigError) as raised:
        run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert str(raised.value) == (
        "cannot resume: the run changed since it was interrupted (kefu_version: was '0.0.9', "
        f"now {kefu.__version__!r}); resume with the same kefu version, inputs, bundle and "
        "options, or pass --fresh to start over"
    )


def test_resume_with_no_unfinished_run_says_so_and_never_scores_a_finished_output_again(
    tmp_path, tiny_bundle
):
    """--resume continues an unfinished run. With none and no OUTPUT yet it starts from the
    beginning, saying so; after a finished run it refuses (scoring again is a new run), where
    it used to score every row again without a word."""
    source = write_jsonl(chat_log(30, bad=False), tmp_path / "log.jsonl")
    output = tmp_path / "out.parquet"
    args = ["score", str(source), "-o", str(output), "--bundle", str(tiny_bundle)]
    args += ["--workers", "1", "--no-progress", "--resume"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.stderr.splitlines()[0] == (
        f"warning: no unfinished run of {output} to resume (no {output}.partial); "
        "scoring from the start"
    )
    assert pq.read_table(output).num_rows == 30
    written = output.stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert (again.exit_code, again.stdout) == (2, "")
    assert again.stderr == (
        f"kefu score: nothing to resume: {output} is already written and no unfinished run of "
        f"it is left (no {output}.partial); rerun without --resume to score it again\n"
    )
    assert output.stat().st_mtime_ns == written
    without = CliRunner().invoke(app, args[:-1])
    assert without.exit_code == 0, without.output
    assert "resume" not in without.stderr


def stopped_before_its_first_commit(job: ScoreJob, staging: Path, engine: str = "local") -> None:
    """`staging` as a run of `job` leaves it when stopped before its first commit."""
    staging.mkdir()
    fingerprint = plan_run(job, engine).fingerprint
    (staging / "state.json").write_text(
        json.dumps({"version": STATE_VERSION, "fingerprint": fingerprint})
    )


@pytest.mark.parametrize(
    ("started", "resumed", "key"),
    [
        ({"session_col": "shop"}, {}, "session_col"),
        ({"session_col": "shop", "turn_col": "msg_id"}, {"session_col": "shop"}, "turn_col"),
        ({"session_col": "shop", "time_col": "created_at"}, {"session_col": "shop"}, "time_col"),
        ({"chunk_size": 7}, {}, "chunk_size"),
        ({"batch_size": 3}, {}, "batch_size"),
        ({"id_col": "msg_id"}, {}, "id_col"),
        ({"encoding": "gb18030"}, {}, "read_options"),
        ({"max_record_lines": 3}, {}, "read_options"),
    ],
)
def test_resume_refuses_changed_options(tmp_path, tiny_bundle, started, resumed, key):
    """Sessions, chunks, batches, ids and how records are read all shape the committed chunks:
    a resume with other options would mix two runs in one output."""
    job, staging = small_job(tmp_path, tiny_bundle, 30)
    stopped_before_its_first_commit(ScoreJob(**{**job.__dict__, **started}), staging)
    with pytest.raises(ConfigError, match=f"cannot resume: the run changed .*{key}: was"):
        run_local(ScoreJob(**{**job.__dict__, **resumed, "resume": True}))


def test_resume_refuses_a_run_another_engine_started(tmp_path, tiny_bundle):
    job, staging = small_job(tmp_path, tiny_bundle, 30)
    stopped_before_its_first_commit(job, staging, engine="ray")
    with pytest.raises(ConfigError, match="engine: was 'ray', now 'local'"):
        run_local(ScoreJob(**{**job.__dict__, "resume": True}))


def test_resume_refuses_a_bundle_resealed_under_the_same_model_version(tmp_path, tiny_bundle):
    """A bundle retrained or recalibrated without a new model_version is still another model."""
    from support.conversations import unsure_bundle
    from support.serving import copy_bundle

    job, staging = small_job(tmp_path, tiny_bundle, 30)
    stopped_before_its_first_commit(job, staging)
    other = unsure_bundle(tiny_bundle, tmp_path / "unsure")  # other calibration.json
    same_name = copy_bundle(other, tmp_path / "resealed", model_version="tiny-0")
    with pytest.raises(ConfigError, match=r"interrupted \(bundle_files: was"):
        run_local(ScoreJob(**{**job.__dict__, "bundle": same_name, "resume": True}))


def test_resume_names_the_kefu_version_first_and_at_most_three_changes(
    tmp_path, tiny_bundle, monkeypatch
):
    """An upgrade explains the differences it brings, so it is named before them."""
    job, staging = small_job(tmp_path, tiny_bundle, 30)
    monkeypatch.setattr("kefu.__version__", "0.0.9")
    started = {"batch_size": 3, "chunk_size": 7, "id_col": "msg_id"}
    stopped_before_its_first_commit(ScoreJob(**{**job.__dict__, **started}), staging)
    monkeypatch.undo()
    with pytest.raises(ConfigError) as raised:
        run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert (
        f"(kefu_version: was '0.0.9', now {kefu.__version__!r}; batch_size: was 3, now "
        f"{job.batch_size}; chunk_size: was 7, now 10); resume with"
    ) in str(raised.value)


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ({"version": STATE_VERSION - 1}, f"state version {STATE_VERSION - 1}"),
        (
            {"version": STATE_VERSION, "chunks": 3},  # a key this version never writes
            "RunState.__init__() got an unexpected keyword argument 'chunks'",
        ),
    ],
)
def test_a_commit_log_of_another_state_version_or_shape_is_refused(
    tmp_path, tiny_bundle, written, why
):
    job, staging = small_job(tmp_path, tiny_bundle, 30)
    staging.mkdir()
    fingerprint = plan_run(job, "local").fingerprint
    (staging / "state.json").write_text(json.dumps({**written, "fingerprint": fingerprint}))
    with pytest.raises(ConfigError) as raised:
        run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert str(raised.value) == (
        f"{staging / 'state.json'} is unreadable ({why}); pass --fresh to start over"
    )


def test_a_run_that_stopped_after_commits_is_not_started_over_by_accident(tmp_path, tiny_bundle):
    job, staging = small_job(tmp_path, tiny_bundle, 30)
    stopped_before_its_first_commit(job, staging)
    state = json.loads((staging / "state.json").read_text())
    (staging / "state.json").write_text(json.dumps({**state, "committed_chunks": 2}))
    with pytest.raises(ConfigError) as raised:
        run_local(job)
    assert str(raised.value) == (
        f"{staging} holds an unfinished run (2 chunks committed); pass --resume to continue it "
        "or --fresh to start over"
    )
