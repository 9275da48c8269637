"""A scoring worker process or Ray actor that cannot load the model (the bundle changed after
the run checked it, or one of its files cannot be read there) ends the run as loading it in
this process would: kefu's one line naming the cause and the file, with the same exit code
whichever the engine, not "a worker died" or Ray's `ActorDiedError` with the cause lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.chat_logs import chat_log, write_csv
from support.scoring_runs import (
    kefu_lines,
    kefu_score_changed_after_checks,
    run_changed_after_checks,
)

from kefu.errors import EXIT_FAILED, EXIT_USAGE, BundleError, KefuError
from kefu.serving.batch import ScoreJob

ENGINES = ["local", pytest.param("ray", marks=pytest.mark.ray)]


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
    broken: list[Path] = []
    job = ScoreJob(
        inputs=[str(source)],
        output=tmp_path / "out.parquet",
        bundle=bundle,
        workers=2,
        progress=False,
    )
    with pytest.raises(KefuError) as raised:  # the bundle passes the checks, then breaks
        run_changed_after_checks(
            engine, job, lambda: broken.append(break_model(bundle, how)), monkeypatch
        )
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
    change_the_model = (
        'with (Path(job.bundle) / "model.onnx").open("ab") as model:\n    model.write(b"x")'
    )
    done = kefu_score_changed_after_checks(
        engine, change_the_model, source, tmp_path / "out.parquet", bundle
    )
    lines = kefu_lines(done.stderr)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert len(lines) == 1, done.stderr  # no traceback, the worker's or Ray's
    assert lines[0].startswith(f"kefu score: {bundle}: sha256 of model.onnx is "), done.stderr
