"""`--engine ray`: on a small local Ray instance, the same rows, rejects and bit-identical scores as
the local engine; without one, what a run that stops leaves and what Ray refuses."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console
from support.chat_logs import chat_log, expected_bad, write_csv, write_jsonl
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import ConfigError, DataError
from kefu.serving.batch import ScoreJob, run_local

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.mark.ray
def test_ray_engine_matches_the_local_engine(tmp_path, tiny_bundle, capfd):
    from kefu.serving.batch.ray_engine import run_ray

    rows = chat_log(2_400, seed=3)
    inputs = [
        str(write_jsonl(rows[:1_500], tmp_path / "a.jsonl", extra_lines=[b"{broken"])),
        str(write_csv(rows[1_500:], tmp_path / "b.csv")),
    ]
    options = {"bundle": tiny_bundle, "id_col": "msg_id", "chunk_size": 150}
    local = run_local(
        ScoreJob(inputs=inputs, output=tmp_path / "local.parquet", progress=False, **options)
    )
    (tmp_path / "ray.parquet.partial" / "ray").mkdir(parents=True)  # what a killed Ray run leaves
    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    # workers=2: two scoring actors; the local Ray instance gets 2 + 1 logical CPUs
    remote = run_ray(
        ScoreJob(inputs=inputs, output=tmp_path / "ray.parquet", workers=2, **options),
        console=terminal,
    )
    assert not ray.is_initialized()  # the engine shut down the instance it started
    # kefu's progress bar counts rows, as the local engine's; Ray's own, counting chunks, and
    # Ray Data's log lines stay off the terminal
    assert "2401/2401" in terminal.file.getvalue()
    chatter = capfd.readouterr().err
    assert "Dataset" not in chatter and "Token authentication" not in chatter, chatter

    assert (remote.rows_read, remote.scored, remote.rejected) == (
        local.rows_read,
        local.scored,
        local.rejected,
    )
    # JSONL: 5 bad kinds per 50 rows + the broken line; CSV holds text, so a number or null
    # arrives as "12345" or "": 4 bad rows per 50
    assert remote.rows_read == 2_401 and remote.rejected == expected_bad(1_500) + 1 + 4 * 900 // 50
    expected = pq.read_table(tmp_path / "local.parquet")
    assert pq.read_table(tmp_path / "ray.parquet").equals(
        expected
    )  # schema, order, bit-identical scores
    local_rejects = (tmp_path / "local.parquet.rejects.jsonl").read_text(encoding="utf-8")
    assert (tmp_path / "ray.parquet.rejects.jsonl").read_text(encoding="utf-8") == local_rejects
    assert not (tmp_path / "ray.parquet.partial").exists()


def _stops(error: BaseException):
    def stage(*args, **kwargs):
        (Path(args[2]).parent / "some.tmp").write_text("staged")  # what a run had staged
        raise error

    return stage


@pytest.mark.ray
@pytest.mark.parametrize("stop", ["a file stops reading", "Ctrl-C"])
def test_a_ray_run_that_stops_removes_what_it_staged(tmp_path, tiny_bundle, monkeypatch, stop):
    """Nothing of a Ray run can be resumed, so a rerun of the same command must just work."""
    from ray.exceptions import RayTaskError

    from kefu.serving.batch import ray_engine

    source = write_csv(chat_log(20, bad=False), tmp_path / "log.csv")
    job = ScoreJob(inputs=[str(source)], output=tmp_path / "out.parquet", bundle=tiny_bundle)
    error = DataError("cannot decompress (gzip): Not a gzipped file", file=str(source))
    raised: BaseException = (
        KeyboardInterrupt()
        if stop == "Ctrl-C"
        else RayTaskError("ReadChunk", "Traceback ...", error).as_instanceof_cause()
    )
    monkeypatch.setattr(ray_engine, "start_ray", lambda workers, address: False)
    monkeypatch.setattr(ray_engine, "_stage", _stops(raised))
    with pytest.raises(type(error) if stop != "Ctrl-C" else KeyboardInterrupt) as caught:
        ray_engine.run_ray(job)
    if stop != "Ctrl-C":
        assert caught.value is error  # kefu's one line, not Ray's traceback
    assert not (tmp_path / "out.parquet.partial").exists()
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.ray
def test_ray_refuses_what_only_the_local_engine_can_continue(tmp_path, tiny_bundle):
    from kefu.serving.batch.ray_engine import run_ray

    source = write_csv(chat_log(20, bad=False), tmp_path / "log.csv")
    options = {"inputs": [str(source)], "output": tmp_path / "out.parquet", "bundle": tiny_bundle}
    with pytest.raises(ConfigError) as resume:
        run_ray(ScoreJob(resume=True, **options))
    assert str(resume.value) == (
        "--resume continues a run of the local engine (--engine local); a Ray run keeps "
        "nothing when it stops: rerun without --resume"
    )
    staging = tmp_path / "out.parquet.partial"
    staging.mkdir()
    (staging / "state.json").write_text("{}")  # an interrupted local run
    with pytest.raises(ConfigError) as unfinished:
        run_ray(ScoreJob(**options))
    assert str(unfinished.value) == (
        f"{staging} holds an unfinished run of the local engine; continue it with "
        "--engine local --resume, or pass --fresh to discard it"
    )
    assert (staging / "state.json").exists()


@pytest.mark.ray
def test_ctrl_c_of_a_ray_run_says_to_rerun_not_to_resume(tmp_path, tiny_bundle, monkeypatch):
    from kefu.serving.batch import ray_engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ray_engine, "run_ray", interrupted)
    source = write_csv(chat_log(20, bad=False), tmp_path / "log.csv")
    args = ["score", str(source), "-o", str(tmp_path / "out.parquet"), "--engine", "ray"]
    result = CliRunner().invoke(app, [*args, "--bundle", str(tiny_bundle)])
    assert (result.exit_code, result.output) == (
        130,
        "kefu score: interrupted: --engine ray keeps nothing; rerun the same command\n",
    )
