"""How rejects files name an input: as the user typed it (a glob: as it matched), in `kefu score`
and `kefu data validate` alike, while `--resume` still knows its inputs by their absolute path."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from support.chat_logs import chat_log, expected_bad, write_jsonl
from support.scoring_runs import read_rejects
from typer.testing import CliRunner

import kefu.serving.batch.staging as staging_module
from kefu.cli.main import app
from kefu.errors import ConfigError, OutputError
from kefu.serving.batch import ScoreJob, run_local

runner = CliRunner()


def logs_folder(base: Path, rows: int = 60) -> None:
    """base/logs/a.jsonl and base/logs/b.jsonl, each with some rows that are rejected."""
    (base / "logs").mkdir()
    write_jsonl(chat_log(rows, seed=1), base / "logs" / "a.jsonl")
    write_jsonl(chat_log(rows, seed=2), base / "logs" / "b.jsonl")


def test_score_names_globbed_and_typed_inputs_as_given(tmp_path, tiny_bundle, monkeypatch):
    logs_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    run_local(
        ScoreJob(
            inputs=["logs/*.jsonl"], output=Path("out.parquet"), bundle=tiny_bundle, progress=False
        )
    )
    names = [reject["file"] for reject in read_rejects(Path("out.parquet"))]
    assert names == ["logs/a.jsonl"] * expected_bad(60) + ["logs/b.jsonl"] * expected_bad(60)
    run_local(
        ScoreJob(
            inputs=["./logs/a.jsonl"], output=Path("a.parquet"), bundle=tiny_bundle, progress=False
        )
    )
    assert {reject["file"] for reject in read_rejects(Path("a.parquet"))} == {"logs/a.jsonl"}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)  # a glob relative to another folder keeps its base
    run_local(
        ScoreJob(
            inputs=["../logs/b*"], output=Path("b.parquet"), bundle=tiny_bundle, progress=False
        )
    )
    assert {reject["file"] for reject in read_rejects(Path("b.parquet"))} == {"../logs/b.jsonl"}


def test_score_and_data_validate_name_a_rejected_row_the_same_way(tmp_path, monkeypatch):
    (tmp_path / "logs").mkdir()
    rows = [
        {"id": "a1", "text": "在吗", "intent": "greeting", "urgency": "low", "emotion": "neutral"},
        {"id": "a2", "text": "   ", "intent": "greeting", "urgency": "low", "emotion": "neutral"},
    ]
    write_jsonl(rows, tmp_path / "logs" / "a.jsonl")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["data", "validate", "logs/a.jsonl", "--rejects", "validate.rejects.jsonl"]
    )
    assert result.exit_code == 0, result.output
    (validated,) = [
        json.loads(line) for line in Path("validate.rejects.jsonl").read_text().splitlines()
    ]
    assert (validated["file"], validated["line"], validated["reason"]) == (
        "logs/a.jsonl",
        2,
        "empty_text",
    )
    assert "rejected: logs/a.jsonl, line 2, column 'text'" in result.output


def test_score_cli_writes_the_short_name(tmp_path, tiny_bundle, monkeypatch):
    logs_folder(tmp_path, rows=30)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app,
        ["score", "logs/a.jsonl", "-o", "out.parquet", "--bundle", str(tiny_bundle)]
        + ["--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert {reject["file"] for reject in read_rejects(Path("out.parquet"))} == {"logs/a.jsonl"}


def committed_chunks(output: Path) -> int:
    state = Path(f"{output}.partial") / "state.json"
    return json.loads(state.read_text())["committed_chunks"] if state.exists() else 0


def no_space_after_commits(output: Path, chunks: int):
    """os.fsync, failing as a full disk does once `chunks` chunks of `output` are committed."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if committed_chunks(output) >= chunks:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    return fsync


def test_resume_keeps_the_first_runs_names_and_still_refuses_another_file(
    tmp_path, tiny_bundle, monkeypatch
):
    logs_folder(tmp_path, rows=200)
    monkeypatch.chdir(tmp_path)
    job = ScoreJob(
        inputs=["logs/*.jsonl"],
        output=Path("out.parquet"),
        bundle=tiny_bundle,
        chunk_size=50,
        progress=False,
    )
    with monkeypatch.context() as patch:
        patch.setattr(staging_module.os, "fsync", no_space_after_commits(job.output, 2))
        with pytest.raises(OutputError, match="No space left on device"):
            run_local(job)
    done = committed_chunks(job.output)
    assert done == 2
    # the run knows its inputs by absolute path: the same names in another folder are other files
    other = tmp_path / "other"
    other.mkdir()
    logs_folder(other, rows=200)
    monkeypatch.chdir(other)
    with pytest.raises(ConfigError, match="cannot resume: the run changed"):
        run_local(ScoreJob(**{**job.__dict__, "output": tmp_path / "out.parquet", "resume": True}))
    # the same files spelled absolute: the run goes on, and names them as its first part did
    monkeypatch.chdir(tmp_path)
    spelled = [str(tmp_path / "logs" / "a.jsonl"), str(tmp_path / "logs" / "b.jsonl")]
    summary = run_local(ScoreJob(**{**job.__dict__, "inputs": spelled, "resume": True}))
    assert summary.resumed_from_chunk == done
    assert sorted(summary.file_rows) == ["logs/a.jsonl", "logs/b.jsonl"]
    assert (summary.rows_read, summary.rejected) == (400, 2 * expected_bad(200))
    names = [reject["file"] for reject in read_rejects(Path("out.parquet"))]
    assert names == ["logs/a.jsonl"] * expected_bad(200) + ["logs/b.jsonl"] * expected_bad(200)
