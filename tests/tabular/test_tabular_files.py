"""Every input kind written for real: xlsx, TSV, gzip and zstd, read like a plain CSV."""

from __future__ import annotations

import gc
import gzip
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
import zstandard
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import DataError
from kefu.serving.batch.readers import read_chunks
from kefu.tabular import estimate_records, read_blocks, read_columns, read_records, table_file, xlsx
from kefu.tabular.xlsx import XlsxRows, write_xlsx, xlsx_cell
from kefu.training.data.loader import load_labelled

runner = CliRunner()
ROWS = [
    ("id", "text", "intent"),
    ("1", "我的快递三天没动了", "logistics_issue"),
    ("2", "在吗", "greeting"),
    ("3", "", "other"),
]
CSV = "".join(",".join(row) + "\n" for row in ROWS).encode()


def write(path: Path) -> Path:
    """ROWS in the format (and compression) that `path`'s suffixes name."""
    name = path.name
    if name.endswith(".xlsx"):
        workbook = openpyxl.Workbook()
        for row in ROWS:
            workbook.active.append(list(row))
        workbook.save(path)
    elif ".tsv" in name:
        path.write_bytes(CSV.replace(b",", b"\t"))
    else:
        path.write_bytes(CSV)
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(path.read_bytes()))
    elif name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(path.read_bytes()))
    return path


@pytest.mark.parametrize(
    "name", ["log.csv", "log.tsv", "log.xlsx", "log.csv.gz", "log.tsv.gz", "log.csv.zst"]
)
def test_every_kind_reads_the_same_records_rejects_and_lines(tmp_path, name):
    path = write(tmp_path / name)
    source = table_file(path)
    assert read_columns(source) == ["id", "text", "intent"]
    records = list(read_records(source))
    expected_values = [dict(zip(ROWS[0], row, strict=True)) for row in ROWS[1:]]
    if name.endswith(".xlsx"):
        expected_values[2]["text"] = None  # an empty cell is empty, not ""
    assert [r.values for r in records] == expected_values
    assert [(r.line, r.end_line) for r in records] == [(2, 2), (3, 3), (4, 4)]  # sheet rows too
    (chunk,) = read_chunks(source, text_col="text", id_col="id", chunk_size=10)
    assert chunk.texts == ["我的快递三天没动了", "在吗"]
    assert chunk.table.column("id").to_pylist() == ["1", "2"]  # cells are text, xlsx too
    assert [(r["line"], r["id"], r["column"]) for r in chunk.rejects] == [(4, "3", "text")]
    assert estimate_records(source) == 3
    data = load_labelled(path)
    assert [row.id for row in data.rows] == ["1", "2"] and len(data.rejects) == 1


def test_xlsx_cells_read_as_the_text_a_csv_export_holds(tmp_path):
    path = tmp_path / "导出.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["编号", "内容", None, "时间", "好评"])
    sheet.append([12345678901234, 666, None, datetime(2024, 3, 1, 9, 30), True])
    sheet.append([])  # an empty row is layout
    sheet.append([2.5, "退款", None, None, False])
    sheet.append([3, "多了一格", None, None, None, "extra"])
    workbook.create_sheet("说明").append(["only the first sheet is read"])
    workbook.save(path)
    source = table_file(path)
    assert read_columns(source) == ["编号", "内容", "column_3", "时间", "好评"]
    records = list(read_records(source))
    assert [(r.line, r.values) for r in records[:2]] == [
        (2, {"编号": "12345678901234", "内容": "666", "column_3": None, "时间": "2024-03-01 09:30:00", "好评": "true"}),
        (4, {"编号": "2.5", "内容": "退款", "column_3": None, "时间": None, "好评": "false"}),
    ]  # fmt: skip
    assert (records[2].line, records[2].problem, records[2].values["编号"]) == (
        5,
        ("malformed_row", "expected 5 fields, found 6"),
        "3",  # the id a reject names, as for CSV
    )
    assert sum(block.lines for block in read_blocks(source, 2)) == 5  # sheet rows 1-5


def test_xlsx_headers_read_as_a_csv_export_and_are_named_by_row(tmp_path):
    path = tmp_path / "t.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append([None])  # the header is the first row with a value
    sheet.append(["id", 2024, " text "])
    sheet.append(["1", 5, "在吗"])
    sheet.append(["2", 1.5e17, "好"])  # too big to keep its digits: as Excel shows
    workbook.save(path)
    assert read_columns(table_file(path)) == ["id", "2024", "text"]
    assert [(r.line, r.values, r.problem) for r in read_records(table_file(path))] == [
        (3, {"id": "1", "2024": "5", "text": "在吗"}, None),
        (4, {"id": "2", "2024": "1.5e+17", "text": "好"}, None),
    ]
    sheet.append([])
    sheet.append(["id", "text", "id"])
    sheet.delete_rows(1, 4)
    workbook.save(path)
    with pytest.raises(DataError) as caught:
        read_columns(table_file(path))
    assert str(caught.value) == (
        f"file {path}, row 2: the header repeats column names: 'id' in columns 1, 3; give each "
        "its own name"
    )


def test_xlsx_cells_written_are_ones_excel_opens():
    assert [xlsx_cell(v) for v in (float("inf"), float("nan"), 1.5)] == [None, None, 1.5]
    assert len(xlsx_cell("长" * 40_000)) == 32_767  # Excel's limit for one cell


def test_too_many_rows_for_xlsx_is_one_error_and_no_stray_traceback(tmp_path, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(xlsx, "MAX_ROWS", 4)
    with pytest.raises(DataError, match="at most 3 rows; write .parquet or .csv"):
        write_xlsx(["a"], ([i] for i in range(10)), tmp_path / "out.xlsx", "scored")
    gc.collect()
    assert unraisable == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("log.xlsx", b"not a zip", "not a readable xlsx workbook"),
        ("log.csv.gz", b"not gzip", r"cannot decompress \(gzip\): Not a gzipped file"),
        ("log.csv.zst", b"not zstd", r"cannot decompress \(zstd\)"),
        ("log.parquet.gz", b"x", "a compressed parquet file cannot be read"),
        ("log.csv.bz2", b"x", "unknown input file type '.bz2'"),
    ],
)
def test_broken_or_unsupported_files_are_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as caught:
        list(read_records(table_file(path)))
    assert name in str(caught.value)


def damaged_workbook(path: Path, rows: int) -> Path:
    """A workbook of `rows` rows whose sheet data is damaged halfway: it opens, then fails."""
    workbook = openpyxl.Workbook()
    workbook.active.append(["id", "text"])
    for number in range(rows):
        workbook.active.append([number, f"我的快递三天没动了 {number}"])
    workbook.save(path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        sheet = archive.getinfo("xl/worksheets/sheet1.xml")
    start = sheet.header_offset + 30 + len(sheet.filename) + len(sheet.extra)
    middle = start + sheet.compress_size // 2
    data[middle : middle + 200] = bytes(byte ^ 0x5A for byte in data[middle : middle + 200])
    path.write_bytes(data)
    return path


def test_a_workbook_damaged_mid_sheet_is_one_line_naming_it(tmp_path, tiny_bundle):
    path = damaged_workbook(tmp_path / "log.xlsx", 20_000)
    rows = XlsxRows(path, "log.xlsx")
    read = [rows.header]
    with pytest.raises(DataError) as caught:
        for record in rows:  # the rows before the damage are read
            read.append(record.values)
    rows.close()
    assert f"the workbook is damaged after sheet row {len(read)}: " in str(caught.value)
    with pytest.raises(DataError, match=r"the workbook is damaged after sheet row \d+: ") as caught:
        list(read_records(table_file(path)))
    assert str(path) in str(caught.value)
    result = runner.invoke(
        app, ["score", str(path), "-o", str(tmp_path / "out.parquet"), "--bundle", str(tiny_bundle)]
    )
    assert result.exit_code == 1, result.output
    assert "the workbook is damaged after sheet row" in result.output
    assert "Traceback" not in result.output


def test_tsv_xlsx_and_gz_work_for_validate_and_report(tmp_path, tiny_bundle):
    for name in ("log.tsv", "log.xlsx", "log.csv.gz"):
        result = runner.invoke(app, ["data", "validate", str(write(tmp_path / name))])
        assert result.exit_code == 0, result.output
        assert "2 usable rows, 1 rejected" in result.output
    scored = tmp_path / "scored.xlsx"
    result = runner.invoke(
        app,
        [
            "score",
            str(tmp_path / "log.tsv"),
            "-o",
            str(scored),
            "--bundle",
            str(tiny_bundle),
            "--no-progress",
            "--max-reject-rate",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    report = runner.invoke(app, ["report", str(scored), "-o", str(tmp_path / "r.html")])
    assert report.exit_code == 0 and "2 messages from 1 file(s)" in report.output, report.output
