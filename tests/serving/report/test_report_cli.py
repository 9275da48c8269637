"""`kefu report` on the command line: its inputs and output checked before reading, one clear
line for each refusal, and the summary it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.serving.report import build_report

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message", "exit_code"),
    [
        (["--time-col", "when"], "missing columns ['when']", 1),
        (["--text-col", "body"], "missing columns ['body']; name the columns with --text-col", 1),
        (["-o", "report.pdf"], "the report is HTML; name the output *.html", 1),
        (["--period", "year"], "--period must be one of", 2),
    ],
)
def test_report_errors_are_one_clear_line(tmp_path, scored, monkeypatch, args, message, exit_code):
    monkeypatch.chdir(tmp_path)
    output = [] if "-o" in args else ["-o", "report.html"]
    result = runner.invoke(app, ["report", str(scored), *output, *args])
    assert result.exit_code == exit_code and result.output.startswith("kefu report: ")
    assert message in result.output and "Traceback" not in result.output


def test_an_unscored_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "raw.csv"
    path.write_text("text\n在吗\n", encoding="utf-8")
    result = runner.invoke(app, ["report", str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert "raw.csv" in result.output and "score it first with kefu score" in result.output


@pytest.mark.parametrize("name", ["reports", "r.html"])
def test_an_output_that_is_a_directory_is_refused_before_reading(tmp_path, scored, name):
    """Not "name the output *.html" for a folder, and not a failed write once every file is
    read, with an empty rejects file left beside it."""
    folder = tmp_path / name
    folder.mkdir()
    result = runner.invoke(app, ["report", str(scored), "-o", str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == (
        f"kefu report: file {folder}: the output is a directory; name a file in it, e.g. "
        f"-o {folder / 'report.html'}\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([name, scored.name])


def test_a_glob_passes_over_the_rejects_files_beside_scored_outputs(tmp_path, scored):
    """`scored/day*.jsonl` matches day1.jsonl.rejects.jsonl too, quoted or expanded by the
    shell: its rows were never scored, and it must neither stop the report ("score it first")
    nor count as a file read."""
    folder = tmp_path / "scored"
    folder.mkdir()
    rows = pq.read_table(scored).to_pylist()
    for day in (1, 2):
        lines = [json.dumps(row, ensure_ascii=False) for row in rows]
        (folder / f"day{day}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    reject = {"file": "in.csv", "line": 2, "end_line": 2, "id": None, "column": "text"}
    (folder / "day1.jsonl.rejects.jsonl").write_text(
        json.dumps({**reject, "reason": "empty_text", "detail": "text is empty"}) + "\n",
        encoding="utf-8",
    )
    (folder / "day2.jsonl.rejects.jsonl").write_text("", encoding="utf-8")
    data = build_report([str(folder / "day*.jsonl")], tmp_path / "r.html")
    assert (data.files, data.rows) == ([f"{folder}/day1.jsonl", f"{folder}/day2.jsonl"], 20)

    named = [str(path) for path in sorted(folder.glob("day*.jsonl"))]  # an unquoted glob
    assert build_report(named, tmp_path / "r.html").files == data.files
    only = str(folder / "*.rejects.jsonl")
    result = runner.invoke(app, ["report", only, "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and result.output == (
        f"kefu report: every input ({folder}/day1.jsonl.rejects.jsonl, "
        f"{folder}/day2.jsonl.rejects.jsonl) is a rejects file of the rows kefu score or kefu "
        "report left out, never scored; name the scored outputs beside them\n"
    )


def test_help_says_trends_may_be_by_month():
    result = runner.invoke(app, ["report", "--help"], env={"COLUMNS": "200"})
    assert "adds trends by day, week or month (see --period)." in " ".join(result.output.split())


def test_cli_report_summary_line(tmp_path, scored):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(scored), "-o", str(out), "--time-col", "created_at"])
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip()
        == f"report: {out} (10 messages from 1 file(s), escalation rate 20.0%)"
    )


def test_an_empty_scored_file_adds_nothing_and_stops_nothing(tmp_path, scored, tiny_bundle):
    empty_input = tmp_path / "quiet-day.csv"
    empty_input.write_text("id,text\n", encoding="utf-8")
    empty = tmp_path / "quiet-day.parquet"
    runner.invoke(app, ["score", str(empty_input), "-o", str(empty), "--bundle", str(tiny_bundle)])
    blank = tmp_path / "blank.jsonl"
    blank.write_text("", encoding="utf-8")
    data = build_report([str(scored), str(empty), str(blank)], tmp_path / "r.html")
    assert (data.rows, len(data.files)) == (10, 3)


def test_unwritable_report_path_is_one_line(tmp_path, scored):
    target = scored / "r.html"  # under a file
    result = runner.invoke(app, ["report", str(scored), "-o", str(target)])
    assert result.exit_code == 1 and result.output == (
        f"kefu report: file {target}: cannot create the output directory {scored} (File exists)\n"
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_report_directory_that_takes_no_file_is_named_before_reading(tmp_path, scored):
    """Named as the report's directory, not as the rejects file kefu report opens first, and
    also for root, whom os.access lets write there."""
    result = runner.invoke(app, ["report", str(scored), "-o", "/proc/r.html"])
    assert result.exit_code == 1 and result.output.startswith(
        "kefu report: file /proc/r.html: the output directory /proc is not writable ("
    )
