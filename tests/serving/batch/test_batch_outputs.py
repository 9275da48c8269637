"""`kefu score` outputs for people: --format, xlsx, --excel-csv; exit codes after the outputs."""

from __future__ import annotations

import codecs
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest
from support.chat_logs import chat_log, expected_bad, write_jsonl
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.serving.batch.job import ReadCounts, Summary
from kefu.serving.batch.scoring import SCORE_COLUMNS

runner = CliRunner()


def kefu_score(source: Path, output: Path, bundle: Path, *extra: str):
    return runner.invoke(
        app,
        ["score", str(source), "-o", str(output), "--bundle", str(bundle), "--no-progress", *extra],
    )


def test_xlsx_output_holds_the_same_rows_as_parquet(tmp_path, tiny_bundle):
    source = write_jsonl(chat_log(60), tmp_path / "log.jsonl")
    assert kefu_score(source, tmp_path / "out.parquet", tiny_bundle).exit_code == 0
    result = kefu_score(source, tmp_path / "out.dat", tiny_bundle, "--format", "xlsx")
    assert result.exit_code == 0, result.output
    expected = pq.read_table(tmp_path / "out.parquet").to_pylist()
    with (tmp_path / "out.dat").open("rb") as handle:  # openpyxl goes by suffix, unless given bytes
        workbook = openpyxl.load_workbook(handle, read_only=True)
        header, *rows = [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    assert workbook.sheetnames == ["scored"]
    assert header == ["msg_id", "shop", "created_at", "text", *SCORE_COLUMNS]
    assert len(rows) == len(expected) == 60 - expected_bad(60)
    for row, want in zip(rows, expected, strict=True):
        got = dict(zip(header, row, strict=True))
        assert got["reasons"] == (";".join(want["reasons"]) or None)
        assert got["escalate"] is want["escalate"]
        assert got["intent_confidence"] == pytest.approx(want["intent_confidence"], abs=1e-12)
        assert (got["msg_id"], got["text"], got["intent"]) == (
            want["msg_id"],
            want["text"],
            want["intent"],
        )


def test_xlsx_output_writes_texts_that_start_with_an_equals_sign_as_text(tmp_path, tiny_bundle):
    """Not as formulas: "=。=" would be a broken one Excel repairs away, =HYPERLINK a live link."""
    texts = ["=。=", "=== 急 ===", '=HYPERLINK("http://x","点")', "-_-"]
    source = write_jsonl([{"text": text} for text in texts], tmp_path / "log.jsonl")
    result = kefu_score(source, tmp_path / "out.xlsx", tiny_bundle)
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(tmp_path / "out.xlsx").worksheets[0]
    cells = [row[0] for row in sheet.iter_rows(min_row=2, max_col=1)]
    assert [(cell.value, cell.data_type) for cell in cells] == [(text, "s") for text in texts]


def test_excel_csv_is_the_same_csv_after_a_utf8_bom(tmp_path, tiny_bundle):
    source = write_jsonl(chat_log(40), tmp_path / "log.jsonl")
    assert kefu_score(source, tmp_path / "plain.csv", tiny_bundle).exit_code == 0
    result = kefu_score(
        source, tmp_path / "excel.txt", tiny_bundle, "--format", "csv", "--excel-csv"
    )
    assert result.exit_code == 0, result.output
    excel = (tmp_path / "excel.txt").read_bytes()
    assert excel == codecs.BOM_UTF8 + (tmp_path / "plain.csv").read_bytes()


def test_too_many_rejects_fail_after_writing_outputs_and_say_why(tmp_path, tiny_bundle):
    source = write_jsonl(chat_log(100), tmp_path / "log.jsonl")  # 10 of 100 rows are bad
    out = tmp_path / "out.parquet"
    result = kefu_score(source, out, tiny_bundle, "--max-reject-rate", "0.05")
    assert result.exit_code == 1
    assert "rows read 100 = scored 90 + rejected 10" in result.output
    assert (
        "kefu score: 10 of 100 rows rejected (10.0%), more than --max-reject-rate 0.05 (5%); the "
        f"reasons are above and every rejected row is in {out}.rejects.jsonl"
    ) in result.output
    assert pq.read_table(out).num_rows == 90  # written all the same
    assert len(Path(f"{out}.rejects.jsonl").read_text().splitlines()) == 10
    assert kefu_score(source, tmp_path / "again.parquet", tiny_bundle).exit_code == 0  # 0.2


def test_a_file_without_usable_rows_fails_the_run_by_name(tmp_path, tiny_bundle):
    good = write_jsonl(chat_log(40, bad=False), tmp_path / "good.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": ""}\n{"text": 3}\n', encoding="utf-8")
    empty = tmp_path / "empty.csv"
    empty.write_text("text\n", encoding="utf-8")
    out = tmp_path / "out.parquet"
    result = runner.invoke(
        app,
        ["score", str(good), str(bad), str(empty), "-o", str(out), "--bundle", str(tiny_bundle)],
    )
    assert result.exit_code == 1
    assert result.output.count("kefu score: ") == 1  # one line, every failing file named
    assert f"{bad}: no usable rows (2 read, all rejected)" in result.output
    assert f"{empty}: no usable rows (it holds no data rows)" in result.output
    assert pq.read_table(out).num_rows == 40


def test_failures_list_every_reason_with_numbers():
    summary = Summary(rejects_file="r.jsonl")
    summary.add(ReadCounts("a.csv", 10, 11, 10), 0, [{"reason": "undecodable_text"}] * 10)
    summary.add(ReadCounts("b.csv", 30, 31, 30), 30, [])
    assert summary.failures(0.2) == [
        "a.csv: no usable rows (10 read, all rejected)",
        "10 of 40 rows rejected (25.0%), more than --max-reject-rate 0.2 (20%); the reasons are "
        "above and every rejected row is in r.jsonl",
        "10 rows held bytes that did not decode: if an input is GBK/GB18030 (Excel on Chinese "
        "Windows), rerun with --encoding gb18030",
    ]
    summary.add(ReadCounts("a.csv", 10, 10, 10), 10, [])
    assert summary.failures(0.2) == []  # 10 of 50 = 20% is not more than 20%


def test_a_summary_whose_counts_do_not_add_up_is_an_error_not_an_output():
    summary = Summary()
    summary.add(ReadCounts("a.csv", 3, 4, 3), 2, [{"reason": "empty_text"}])
    summary.check()  # 3 rows = 2 scored + 1 rejected, in 3 of 4 lines
    summary.scored = 3
    with pytest.raises(RuntimeError) as raised:
        summary.check()
    assert str(raised.value) == "row accounting broken: read 3 != scored 3 + rejected 1"
    summary.scored, summary.record_lines = 2, 2
    with pytest.raises(RuntimeError) as raised:
        summary.check()
    assert str(raised.value) == "line accounting broken: 3 rows in 2 lines of 4 input lines"
