"""A scoring worker process or Ray actor that cannot load the model (the bundle changed after
the run checked it, or one of its files cannot be read there) ends the run as loading it in
this process would: kefu's one line naming the cause and the file, with the same exit code
whichever the engine, not "a worker died" or Ray's `ActorDiedError` with the cause lost."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from support.chat_logs import chat_log, write_csv
from support.scoring_runs import kefu_lines

from kefu.errors import EXIT_FAILED, EXIT_USAGE, BundleError, KefuError
from kefu.serving.batch import ScoreJob, local_engine

ENGINES = ["local", pytest.param("ray", marks=pytest.mark.ray)]
# `kefu score` in a separate process, with the bundle broken right after the run checked it
CLI_WITH_A_BUNDLE_BROKEN_AFTER_ITS_CHECK = """
import sys
from pathlib import Path

from kefu.cli.main import app
from kefu.serving.batch import local_engine


def plan_then_change_the_model(job, engine):
    plan = check(job, engine)
    with (Path(job.bundle) / "model.onnx").open("ab") as model:
        model.write(b"x")
    return plan


if __name__ == "__main__":  # not again in a spawned worker, which imports this module
    if sys.argv[1] == "ray":
        from kefu.serving.batch import ray_engine as engine
    else:
        engine = local_engine
    check = engine.plan_run
    engine.plan_run = plan_then_change_the_model
    app(sys.argv[2:], prog_name="kefu")
"""


def break_model(bundle: Path, how: str) -> Path:
    """`bundle`'s model file changed (its hash no longer the manifest's) or unreadable (a
    folder in its place: reading it raises IsADirectoryError, an OSError, even as root)."""
    model = bundle / "model.onnx"
    if how == "changed":
        with model.open("ab") as handle:
            handle.write(b"x")
    else:
        model.unlink()
        model.mkdir()
    return model


@pytest.fixture()
def source(tmp_path):
    return write_csv(chat_log(20, bad=False), tmp_path / "log.csv")


@pytest.fixture()
def bundle(tmp_path, tiny_bundle):
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("how", ["changed", "unreadable"])
def test_a_model_a_worker_cannot_load_ends_the_run_with_its_cause_and_file(
    tmp_path, source, bundle, monkeypatch, request, engine, how
):
    if engine == "ray":
        request.getfixturevalue("ray_instance")  # run_ray joins it
        from kefu.serving.batch import ray_engine as module
    else:
        module = local_engine
    check = module.plan_run
    broken: list[Path] = []

    def plan_then_break(job, engine):
        plan = check(job, engine)  # the bundle passes the run's checks...
        broken.append(break_model(bundle, how))  # ...then breaks before a worker loads it
        return plan

    monkeypatch.setattr(module, "plan_run", plan_then_break)
    job = ScoreJob(
        inputs=[str(source)],
        output=tmp_path / "out.parquet",
        bundle=bundle,
        workers=2,
        progress=False,
    )
    run = local_engine.run_local if engine == "local" else module.run_ray
    with pytest.raises(KefuError) as raised:
        run(job, console=Console(file=io.StringIO()))
    error, [model] = raised.value, broken
    if how == "changed":  # as when this process loads it: the bundle's own error, exit 2
        assert type(error) is BundleError and error.exit_code == EXIT_USAGE
        assert str(error).startswith(f"{bundle}: sha256 of model.onnx is "), error
        assert str(error).endswith("changed or corrupted after export; re-export the bundle")
    else:  # a read the system refused: one line naming the file, exit 1
        assert type(error) is KefuError and error.exit_code == EXIT_FAILED
        refused = f"IsADirectoryError: [Errno 21] Is a directory: '{model}'"
        assert str(error) == (
            f"scoring failed: {refused}; committed chunks are kept: once fixed, rerun with --resume"
            if engine == "local"
            else f"the Ray run failed: {refused}"
        )
    assert not job.output.exists()


@pytest.mark.parametrize("engine", ENGINES)
def test_kefu_score_prints_the_cause_as_its_one_line_and_exits_as_the_local_engine(
    tmp_path, source, bundle, engine
):
    if engine == "ray":
        pytest.importorskip("ray", reason="the ray extra is not installed")
    done = subprocess.run(
        [sys.executable, "-c", CLI_WITH_A_BUNDLE_BROKEN_AFTER_ITS_CHECK, engine, "score"]
        + [str(source), "-o", str(tmp_path / "out.parquet"), "--bundle", str(bundle)]
        + ["--engine", engine, "--workers", "2", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = kefu_lines(done.stderr)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert len(lines) == 1, done.stderr  # no traceback, the worker's or Ray's
    assert lines[0].startswith(f"kefu score: {bundle}: sha256 of model.onnx is "), done.stderr
