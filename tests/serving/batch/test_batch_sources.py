"""The output path is checked by writing a file there, before anything is scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.errors import DataError
from kefu.serving.batch.sources import check_output
from kefu.tabular import resolve_files


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_directory_that_takes_no_files_is_refused_even_for_root():
    # os.access says yes to root here; creating a file says no, as the staging would later
    with pytest.raises(DataError) as refused:
        check_output(Path("/proc/out.parquet"), [])
    assert str(refused.value).startswith(
        "file /proc/out.parquet: the output directory /proc is not writable ("
    )


def test_a_writable_output_directory_is_left_as_it_was(tmp_path):
    assert check_output(tmp_path / "new" / "out.csv", []) == "csv"
    assert [path.name for path in tmp_path.rglob("*")] == ["new"]


def test_an_output_that_is_a_directory_is_refused_before_scoring(tmp_path):
    (tmp_path / "scored.csv").mkdir()
    with pytest.raises(DataError) as refused:
        check_output(tmp_path / "scored.csv", [])
    assert str(refused.value) == (
        f"file {tmp_path}/scored.csv: the output is a directory; name a file in it, "
        f"e.g. -o {tmp_path}/scored.csv/scored.parquet"
    )


def test_an_output_that_a_glob_of_the_inputs_matches_is_refused_with_why(tmp_path):
    """The second run of `kefu score 'logs/*.csv' -o logs/scored.csv` finds the first's output."""
    for name in ("a.csv", "scored.csv"):
        (tmp_path / name).write_text("text\n在吗\n", encoding="utf-8")
    inputs = resolve_files([str(tmp_path / "*.csv")])
    with pytest.raises(DataError) as refused:
        check_output(tmp_path / "scored.csv", inputs)
    assert str(refused.value) == (
        f"file {tmp_path}/scored.csv: the output would overwrite one of the inputs (a glob of the "
        "inputs matches it when an earlier run wrote it beside them); write it where no input "
        "pattern matches"
    )
