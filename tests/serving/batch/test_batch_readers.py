"""Streaming readers: chunks, rejects with file + line/row + reason, input checks."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kefu.errors import DataError
from kefu.serving.batch.readers import read_chunks
from kefu.serving.batch.sources import check_input
from kefu.tabular import resolve_files, text_problem


def chunks_of(path: Path, chunk_size: int = 100, id_col: str | None = None, skip: int = 0):
    (source,) = resolve_files([str(path)])
    return list(
        read_chunks(source, text_col="text", id_col=id_col, chunk_size=chunk_size, skip=skip)
    )


def test_text_problem_names_each_reason():
    assert text_problem("在吗") is None
    assert text_problem(None)[0] == "missing_text"
    assert text_problem(float("nan"))[0] == "missing_text"
    assert text_problem(" \t\u3000")[0] == "empty_text"  # ideographic space folds away under NFKC
    assert text_problem(42) == ("not_text", "text is a number, expected a string")
    assert text_problem(["a"]) == ("not_text", "text is an array, expected a string")
    assert text_problem(b"\xff\xfeabc") == ("undecodable_text", "invalid UTF-8 byte 0xff at byte 0")
    assert text_problem("ab\udcff")[0] == "undecodable_text"


def test_a_text_of_exactly_the_limit_is_scored():
    """As the server: over KEFU_MAX_TEXT_CHARS is rejected, at it is not."""
    assert text_problem("在" * 5, max_chars=5) is None
    assert text_problem("在" * 6, max_chars=5) == (
        "text_too_long",
        "text has 6 characters; the limit is 5",
    )


def test_reject_ids_keep_their_json_value(tmp_path):
    path = tmp_path / "ids.jsonl"
    ids = [7, 2.5, "a7", True, None, [1, 2]]
    path.write_text("".join(json.dumps({"id": i, "text": None}) + "\n" for i in ids), "utf-8")
    (chunk,) = chunks_of(path, id_col="id")
    assert [reject["id"] for reject in chunk.rejects] == [7, 2.5, "a7", True, None, "[1, 2]"]


def test_csv_rows_rejects_and_line_numbers(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(
        "\ufeffid,text,shop\n"  # BOM on the header
        "1,在吗,a\n"
        '2,"第一行\n第二行",a\n'  # a quoted field over two lines: the next record starts on line 5
        "3,,a\n"
        "\n"  # blank line: layout, not a row
        "4,too,many,fields\n".encode()
        + b"5,\xff\xfe bad bytes,a\n"
        + b"6,fine,sh\xffop\n"
    )
    (chunk,) = chunks_of(path, id_col="id")
    assert chunk.rows_read == 6
    assert (chunk.counts.lines, chunk.counts.record_lines, chunk.counts.multiline_rows) == (9, 7, 1)
    assert chunk.texts == ["在吗", "第一行\n第二行", "fine"]
    assert chunk.table.column_names == ["id", "text", "shop"]
    assert chunk.table.column("shop").to_pylist() == ["a", "a", "sh\ufffdop"]  # repaired, kept
    assert [(r["line"], r["reason"], r["id"]) for r in chunk.rejects] == [
        (5, "empty_text", "3"),
        (7, "malformed_row", "4"),  # the id column is still readable
        (8, "undecodable_text", "5"),
    ]
    assert chunk.rejects[0] == {
        "file": str(path.resolve()),
        "line": 5,
        "end_line": 5,
        "id": "3",
        "column": "text",
        "reason": "empty_text",
        "detail": "text is empty or holds only white space, markup or invisible characters",
    }
    assert (chunk.rejects[1]["column"], chunk.rejects[1]["detail"]) == (
        None,
        "expected 3 fields, found 4",
    )
    assert (
        chunk.rejects[2]["detail"]
        == "invalid utf-8 byte 0xff at character 0 (if the file is not utf-8, pass --encoding gb18030)"
    )


def test_jsonl_rejects_every_kind_with_its_line(tmp_path):
    lines = [
        b'{"id": 1, "text": "\xe9\x80\x80\xe6\xac\xbe"}',  # 退款
        b"",
        b'{"id": 2, "text": ""}',
        b'{"id": 3, "text": 7}',
        b'{"id": 4}',
        b"{not json",
        b"[1, 2]",
        b'{"id": 5, "text": "\\udc80 escaped surrogate"}',
        b'{"id": 6, "text": "\xff raw byte"}',
        b'{"id": 7, "text": "ok", "extra": {"a": 1}}',
    ]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    (chunk,) = chunks_of(path, id_col="id")
    assert chunk.texts == ["退款", "ok"]
    assert chunk.rows_read == 9  # the blank line is not a row
    assert [(r["line"], r["reason"]) for r in chunk.rejects] == [
        (3, "empty_text"),
        (4, "not_text"),
        (5, "missing_text"),
        (6, "invalid_json"),
        (7, "not_an_object"),
        (8, "undecodable_text"),
        (9, "undecodable_text"),
    ]
    assert chunk.table.column("extra").to_pylist() == [None, {"a": 1}]


def test_jsonl_column_with_mixed_types_becomes_text(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "a", "v": 1}\n{"text": "b", "v": "x"}\n', encoding="utf-8")
    (chunk,) = chunks_of(path)
    assert chunk.table.column("v").to_pylist() == ["1", "x"]


def test_parquet_chunks_are_exact_and_rows_numbered(tmp_path):
    texts = [f"消息{i}" for i in range(10)]
    texts[5], texts[8] = None, " "
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"text": texts, "n": list(range(10))}), path, row_group_size=3)
    chunks = chunks_of(path, chunk_size=4)
    assert [c.rows_read for c in chunks] == [4, 4, 2]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert chunks[1].table.column("n").to_pylist() == [4, 6, 7]
    assert [(r["line"], r["end_line"], r["reason"]) for r in chunks[1].rejects] == [
        (6, 6, "missing_text")
    ]  # Parquet: the line is the 1-based row
    assert [(r["line"], r["end_line"], r["reason"]) for r in chunks[2].rejects] == [
        (9, 9, "empty_text")
    ]


def test_parquet_binary_text_column_is_decoded_or_rejected(tmp_path):
    path = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"text": pa.array(["好".encode(), b"\xff"], pa.binary())}), path)
    (chunk,) = chunks_of(path)
    assert chunk.texts == ["好"]
    assert chunk.rejects[0]["reason"] == "undecodable_text"


def test_skipped_chunks_are_the_same_cut(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(25)), encoding="utf-8"
    )
    full = chunks_of(path, chunk_size=10)
    tail = chunks_of(path, chunk_size=10, skip=2)
    assert [c.index for c in tail] == [2]
    assert tail[0].texts == full[2].texts == [f"t{i}" for i in range(20, 25)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("log.txt", b"text\nhi\n", "unknown input file type '.txt'"),
        ("log.csv", b"id,body\n1,hi\n", "text column 'text' is missing"),
        ("log.jsonl", b'{"body": "hi"}\n', "text column 'text' is missing"),
        ("log.parquet", b"not parquet at all", "not a readable Parquet file"),
        ("dup.csv", b"text,text\nhi,hi\n", "the header repeats column names"),
    ],
)
def test_bad_files_raise_data_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as caught:
        for source in resolve_files([str(path)]):
            check_input(source, "text", None)
    assert str(path.name) in str(caught.value)


def workbook_refusal(path: Path, sheets: dict[str, list[list[str]]]) -> str:
    """Why check_input refuses a workbook of these worksheets (name -> rows), in order."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    (source,) = resolve_files([str(path)])
    with pytest.raises(DataError) as caught:
        check_input(source, "text", None)
    return str(caught.value)


def test_a_workbook_without_the_text_column_says_which_row_and_sheet_were_read(tmp_path):
    """Shop exports put a title row above the header, or the data on a later worksheet."""
    path = tmp_path / "导出.xlsx"
    sheets = {"说明": [["订单导出 2024-03"]], "数据": [["id", "text"]]}
    assert workbook_refusal(path, sheets) == (
        f"file {path}, column 'text': text column 'text' is missing; found columns "
        "['订单导出 2024-03'] (the first non-empty row of worksheet '说明' is read as the "
        "header: delete any title row above the real one; worksheets after the first are not "
        "read: '数据'); name it with --text-col"
    )


def test_a_workbook_whose_first_sheet_is_empty_names_the_sheets_after_it(tmp_path):
    path = tmp_path / "导出.xlsx"
    assert workbook_refusal(path, {"Sheet1": [], "聊天记录": [["id", "text"]]}) == (
        f"file {path}: worksheet 'Sheet1' is empty, and only the first worksheet is read; move "
        "the one with the messages first (the others: '聊天记录')"
    )


def test_parquet_text_column_of_numbers_is_refused(tmp_path):
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), path)
    (source,) = resolve_files([str(path)])
    with pytest.raises(DataError, match="has type int64; expected a string column"):
        check_input(source, "text", None)


def test_globs_expand_sorted_and_missing_inputs_are_named(tmp_path):
    for name in ("b.jsonl", "a.jsonl"):
        (tmp_path / name).write_text('{"text": "x"}\n', encoding="utf-8")
    found = resolve_files([str(tmp_path / "*.jsonl"), str(tmp_path / "a.jsonl")])
    assert [s.path.name for s in found] == ["a.jsonl", "b.jsonl"]
    with pytest.raises(DataError, match="matches no file"):
        resolve_files([str(tmp_path / "*.csv")])
    with pytest.raises(DataError, match="input file does not exist"):
        resolve_files([str(tmp_path / "nope.csv")])
