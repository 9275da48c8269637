"""An input file that goes away after the run's checks (deleted, or a folder in its place) or
changes (truncated, appended to) ends the run with one line naming it, the same from both
engines: through Ray too, where an OSError raised in a read task would reach the driver with
Ray's retry advice in place of its file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.chat_logs import chat_log, write_csv
from support.scoring_runs import (
    kefu_lines,
    kefu_score_changed_after_checks,
    run_changed_after_checks,
)

from kefu.errors import EXIT_FAILED, DataError
from kefu.serving.batch import ScoreJob

ENGINES = ["local", pytest.param("ray", marks=pytest.mark.ray)]
REFUSED = {
    "deleted": "[Errno 2] No such file or directory",
    "a folder": "[Errno 21] Is a directory",  # an OSError even as root, unlike a lost permission
}


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
    job = ScoreJob(
        inputs=[str(source)],
        output=tmp_path / "out.parquet",
        bundle=tiny_bundle,
        workers=2,
        progress=False,
    )
    with pytest.raises(DataError) as raised:  # the input passes the checks, then goes
        run_changed_after_checks(engine, job, lambda: take_away(source, how), monkeypatch)
    assert str(raised.value) == f"file {source}: reading stopped: {REFUSED[how]}: '{source}'"
    assert raised.value.exit_code == EXIT_FAILED
    assert not job.output.exists()


@pytest.mark.parametrize("engine", ENGINES)
def test_kefu_score_prints_the_input_gone_as_one_line(tmp_path, source, tiny_bundle, engine):
    replace_by_a_folder = "Path(job.inputs[0]).unlink()\nPath(job.inputs[0]).mkdir()"
    done = kefu_score_changed_after_checks(
        engine, replace_by_a_folder, source, tmp_path / "out.parquet", tiny_bundle
    )
    assert done.returncode == EXIT_FAILED, done.stderr
    assert kefu_lines(done.stderr) == [
        f"kefu score: file {source}: reading stopped: {REFUSED['a folder']}: '{source}'"
    ], done.stderr


def change(source: Path, how: str) -> None:
    if how == "truncated":
        source.write_bytes(b"")
    else:  # a log still being written to
        with source.open("ab") as log:
            log.write(b"x" * 10)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("how", ["truncated", "appended to"])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_input_changed_after_the_checks_ends_the_run_naming_it(
    tmp_path, source, tiny_bundle, monkeypatch, request, engine, how, suffix
):
    if engine == "ray":
        request.getfixturevalue("ray_instance")
    if suffix == ".parquet":
        parquet = tmp_path / "log.parquet"
        pq.write_table(pa.table({"text": ["退款怎么还没到账"] * 20}), parquet)
        source = parquet
    size = source.stat().st_size
    job = ScoreJob(
        inputs=[str(source)], output=tmp_path / "out.parquet", bundle=tiny_bundle, progress=False
    )
    with pytest.raises(DataError) as raised:  # before, a truncated file read as empty: exit 0
        run_changed_after_checks(engine, job, lambda: change(source, how), monkeypatch)
    now = source.stat().st_size
    assert str(raised.value) == (
        f"file {source}: the file changed while kefu was using it ({size:,} bytes when first "
        f"opened, {now:,} now); rerun once nothing writes to it, or on a copy"
    )
    assert raised.value.exit_code == EXIT_FAILED
    assert not job.output.exists()
