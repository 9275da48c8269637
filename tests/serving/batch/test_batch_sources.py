"""The output path is checked by writing a file there, before anything is scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.errors import DataError
from kefu.serving.batch.sources import check_output


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
