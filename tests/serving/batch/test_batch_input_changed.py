"""An input file that goes away after the run's checks (deleted, or a folder in its place) ends
the run with one line naming it, the same from both engines: through Ray too, where an OSError
raised in a read task would reach the driver with Ray's retry advice in place of its file."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from support.chat_logs import chat_log, write_csv
from support.scoring_runs import kefu_lines

from kefu.errors import EXIT_FAILED, DataError
from kefu.serving.batch import ScoreJob, local_engine

ENGINES = ["local", pytest.param("ray", marks=pytest.mark.ray)]
REFUSED = {
    "deleted": "[Errno 2] No such file or directory",
    "a folder": "[Errno 21] Is a directory",  # an OSError even as root, unlike a lost permission
}
# `kefu score` in a separate process, its input replaced by a folder right after the run's checks
CLI_WITH_THE_INPUT_GONE_AFTER_ITS_CHECK = """
import sys
from pathlib import Path

from kefu.cli.main import app
from kefu.serving.batch import local_engine


def plan_then_replace_the_input(job, engine):
    plan = check(job, engine)
    Path(job.inputs[0]).unlink()
    Path(job.inputs[0]).mkdir()
    return plan


if __name__ == "__main__":  # not again in a spawned worker, which imports this module
    if sys.argv[1] == "ray":
        from kefu.serving.batch import ray_engine as engine
    else:
        engine = local_engine
    check = engine.plan_run
    engine.plan_run = plan_then_replace_the_input
    app(sys.argv[2:], prog_name="kefu")
"""


def take_away(source: Path, how: str) -> None:
    source.unlink()
    if how == "a folder":
        source.mkdir()


@pytest.fixture()
def source(tmp_path):
    return write_csv(chat_log(20, bad=False), tmp_path / "log.csv")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("how", REFUSED)
def test_an_input_gone_after_the_checks_ends_the_run_naming_it(
    tmp_path, source, tiny_bundle, monkeypatch, request, engine, how
):
    if engine == "ray":
        request.getfixturevalue("ray_instance")  # run_ray joins it
        from kefu.serving.batch import ray_engine as module
    else:
        module = local_engine
    check = module.plan_run

    def plan_then_take_away(job, engine):
        plan = check(job, engine)  # the input passes the run's checks...
        take_away(source, how)  # ...then goes before a read task opens it
        return plan

    monkeypatch.setattr(module, "plan_run", plan_then_take_away)
    job = ScoreJob(
        inputs=[str(source)],
        output=tmp_path / "out.parquet",
        bundle=tiny_bundle,
        workers=2,
        progress=False,
    )
    run = local_engine.run_local if engine == "local" else module.run_ray
    with pytest.raises(DataError) as raised:
        run(job, console=Console(file=io.StringIO()))
    assert str(raised.value) == f"file {source}: reading stopped: {REFUSED[how]}: '{source}'"
    assert raised.value.exit_code == EXIT_FAILED
    assert not job.output.exists()


@pytest.mark.parametrize("engine", ENGINES)
def test_kefu_score_prints_the_input_gone_as_one_line(tmp_path, source, tiny_bundle, engine):
    done = subprocess.run(
        [sys.executable, "-c", CLI_WITH_THE_INPUT_GONE_AFTER_ITS_CHECK, engine, "score"]
        + [str(source), "-o", str(tmp_path / "out.parquet"), "--bundle", str(tiny_bundle)]
        + ["--engine", engine, "--workers", "2", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == EXIT_FAILED, done.stderr
    assert kefu_lines(done.stderr) == [
        f"kefu score: file {source}: reading stopped: {REFUSED['a folder']}: '{source}'"
    ], done.stderr
