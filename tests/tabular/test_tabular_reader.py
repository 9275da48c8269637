"""The one reader: same rejects for score, train and report; blocks that account for every line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kefu.errors import DataError
from kefu.serving.batch.readers import read_chunks
from kefu.serving.report.load import read_scored
from kefu.tabular import (
    Reject,
    estimate_records,
    read_blocks,
    read_columns,
    read_records,
    table_file,
)
from kefu.tabular.textrows import COLUMN_SCAN_LINES
from kefu.training.data.loader import load_labelled

ROW = {
    "id": "a",
    "text": "在吗",
    "intent": "greeting",
    "urgency": "low",
    "emotion": "neutral",
    "escalate": False,
    "reasons": [],
}


def test_score_train_and_report_give_the_same_rejects_for_the_same_file(tmp_path):
    path = tmp_path / "log.jsonl"
    good = json.dumps(ROW, ensure_ascii=False).encode()
    damaged = good.replace(b'"a"', b'"c"').replace("在".encode(), b"\xc4\xe3")  # GBK bytes
    path.write_bytes(good + b"\n{broken\n" + damaged + b"\n")
    trained = load_labelled(path)
    (chunk,) = read_chunks(table_file(path), text_col="text", id_col="id", chunk_size=10)
    (scored,) = read_scored(table_file(path), "text", None)

    expected = [
        Reject(str(path), 2, 2, None, None, "invalid_json", "Expecting property name enclosed in double quotes (column 2)"),
        Reject(str(path), 3, 3, "c", "text", "undecodable_text", "invalid utf-8 byte 0xc4 at character 0 (if the file is not utf-8, pass --encoding gb18030)"),
    ]  # fmt: skip
    assert trained.rejects == expected
    assert chunk.rejects == [reject.to_dict() for reject in expected]
    assert scored.rejects == [expected[0]]  # the report does not score texts: only line 2 is out
    assert scored.text == ["在吗", "\ufffd\ufffd吗"]  # the bad bytes are shown, not guessed
    assert expected[1].describe() == (
        f"{path}, line 3, column 'text': invalid utf-8 byte 0xc4 at character 0 (if the file is not utf-8, pass --encoding gb18030)"
    )


def test_a_header_repeated_where_files_were_joined_is_a_reject_not_a_message(tmp_path):
    """`cat a.csv b.csv` (b with a BOM): b's header is no customer message, nor a label set."""
    path = tmp_path / "joined.csv"
    header = "id,text,intent\r\n"
    first, second = header + "1,退款,refund_return\r\n", header + "2,在吗,greeting\r\n"
    path.write_bytes(first.encode() + b"\xef\xbb\xbf" + second.encode())
    trained = load_labelled(path)
    (chunk,) = read_chunks(table_file(path), text_col="text", id_col="id", chunk_size=10)
    expected = Reject(
        str(path), 3, 3, "\ufeffid", None, "repeated_header",
        "the record repeats the header (files joined into one?); it holds no message",
    )  # fmt: skip
    assert (trained.rejects, len(trained.rows)) == ([expected], 2)
    assert chunk.rejects == [expected.to_dict()]


def test_a_cut_off_json_line_is_rejected_where_it_ends(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text('{"id": "b", "text": "在吗", "intent": "greeting"\n', encoding="utf-8")
    (reject,) = load_labelled(path).rejects
    assert (reject.line, reject.reason, reject.detail) == (
        1,
        "invalid_json",
        "Expecting ',' delimiter (column 47)",
    )


def test_blocks_account_for_every_physical_line(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        'id,text\n\n1,a\n2,"two\nlines"\n\n3,c\n4,d\n\n\n', encoding="utf-8", newline=""
    )
    blocks = list(read_blocks(table_file(path), 2))
    assert [[(r.line, r.end_line) for r in b.records] for b in blocks] == [
        [(3, 3), (4, 5)],
        [(7, 7), (8, 8)],
    ]
    # lines 1-5 (header, blank, records) in block 1; 6-10 (blank, records, 2 trailing blanks) in 2
    assert [b.lines for b in blocks] == [5, 5]
    assert [(b.record_lines, b.multiline_records) for b in blocks] == [(3, 1), (2, 0)]


def test_lines_of_delimiters_only_are_blank_as_empty_sheet_rows_are(tmp_path):
    """Excel writes `,,` for the empty rows of a sheet's used range, above the header too."""
    path = tmp_path / "export.csv"
    path.write_text(',,\r\nid,text,shop\r\n1,退款,A\r\n,,,,\r\n"",,\r\n2,在吗,B\r\n,,\r\n')
    assert read_columns(table_file(path)) == ["id", "text", "shop"]
    (block,) = read_blocks(table_file(path), 10)
    assert [(r.line, r.values) for r in block.records] == [
        (3, {"id": "1", "text": "退款", "shop": "A"}),
        (6, {"id": "2", "text": "在吗", "shop": "B"}),
    ]
    assert block.lines == 7


def test_a_repeated_column_name_names_the_line_and_the_columns(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("\n,,\ntext,id,text\n")
    with pytest.raises(DataError) as caught:
        read_columns(table_file(path))
    assert str(caught.value) == (
        f"file {path}, line 3: the header repeats column names: 'text' in columns 1, 3; give "
        "each its own name"
    )


def test_columns_without_a_name_are_named_by_position_as_in_a_sheet(tmp_path):
    """Excel's CSV ends the header with `,,` for the empty columns of the sheet's used range."""
    path = tmp_path / "export.csv"
    path.write_text("id,text,,\r\n1,在吗,,\r\n")
    assert read_columns(table_file(path)) == ["id", "text", "column_3", "column_4"]
    (record,) = read_records(table_file(path))
    assert record.values == {"id": "1", "text": "在吗", "column_3": "", "column_4": ""}


@pytest.mark.parametrize(
    ("name", "content", "columns", "lines"),
    [
        ("header.csv", b"id,text\n", ["id", "text"], 1),
        ("empty.csv", b"", None, 0),
        ("blank.jsonl", b"\n\n", None, 2),
    ],
)
def test_a_file_without_records_still_gives_one_block(tmp_path, name, content, columns, lines):
    path = tmp_path / name
    path.write_bytes(content)
    assert read_columns(table_file(path)) == columns
    (block,) = read_blocks(table_file(path), 10)
    assert (len(block), block.lines) == (0, lines)


def test_parquet_blocks_are_exact_and_narrow_to_the_columns_asked(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": list("abcde"), "n": range(5)}), path, row_group_size=2)
    blocks = list(read_blocks(table_file(path), 3, columns=["n", "absent"]))
    assert [b.table.column_names for b in blocks] == [["n"], ["n"]]
    assert [[r.line for r in b.records] for b in blocks] == [[1, 2, 3], [4, 5]]
    first = next(iter(read_records(table_file(path))))
    assert (first.line, first.values, first.unit) == (1, {"text": "a", "n": 0}, "row")
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), empty)
    (block,) = read_blocks(table_file(empty), 3)
    assert (len(block), block.table.column_names) == (0, ["text"])


def test_a_json_file_without_an_array_is_json_lines(tmp_path):
    lines = tmp_path / "lines.json"
    lines.write_text('{"text": "a"}\n[1]\n', encoding="utf-8")
    assert [r.problem for r in read_records(table_file(lines))] == [
        None,
        ("not_an_object", "found a JSON list"),
    ]
    arrays = tmp_path / "arrays.jsonl"  # only a .json file is read as one array
    arrays.write_text('[1]\n{"text": "a"}\n', encoding="utf-8")
    assert [(r.line, r.problem) for r in read_records(table_file(arrays))] == [
        (1, ("not_an_object", "found a JSON list")),
        (2, None),
    ]


def test_columns_are_the_keys_of_the_first_lines_only(tmp_path):
    late = tmp_path / "late.jsonl"  # keys are looked for in the first COLUMN_SCAN_LINES lines
    late.write_text(
        '{"text": "a"}\n' * (COLUMN_SCAN_LINES - 1)
        + '{"text": "a", "shop": "s"}\n{"text": "a", "later": 1}\n',
        encoding="utf-8",
    )
    assert read_columns(table_file(late)) == ["text", "shop"]


def test_paths_are_checked_before_reading(tmp_path):
    with pytest.raises(DataError, match="input file does not exist"):
        table_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="input is a directory"):
        table_file(tmp_path)
    Path(tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"unknown input file type '\.txt'; expected one of"):
        table_file(tmp_path / "notes.txt")


def test_a_last_line_without_a_line_ending_is_counted(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("id,text\n1,a\n2,b", encoding="utf-8")
    assert estimate_records(table_file(path)) == 2
    (block,) = read_blocks(table_file(path), 10)
    assert (len(block), block.lines) == (2, 3)


def test_a_reject_names_every_line_of_its_record(tmp_path):
    path = tmp_path / "log.csv"
    card = "\n".join(f"[第{i}行]" for i in range(7))
    path.write_text(f'id,text\na,"{card}"\nb,next\n', encoding="utf-8")
    (chunk,) = read_chunks(table_file(path), text_col="text", id_col="id", chunk_size=10)
    assert [(r["line"], r["end_line"], r["reason"]) for r in chunk.rejects] == [
        (2, 8, "record_too_long")
    ]
    two = Reject(str(path), 2, 3, "a", "text", "empty_text", "empty")
    assert two.describe() == f"{path}, lines 2-3, column 'text': empty"


def test_values_kept_from_a_bad_file_are_valid_json_and_utf8(tmp_path):
    path = tmp_path / "log.parquet"
    table = pa.table({"id": [float("nan"), 2.0], "text": [None, "在吗"]})
    pq.write_table(table, path)
    (chunk,) = read_chunks(table_file(path), text_col="text", id_col="id", chunk_size=10)
    assert [(r["line"], r["id"], r["reason"]) for r in chunk.rejects] == [(1, None, "missing_text")]
    nested = tmp_path / "nested.jsonl"  # bytes that do not decode, inside an object
    text = "我的快递三天没动了".encode()  # UTF-8 around the two bad bytes: read as UTF-8
    nested.write_bytes(b'{"text": "' + text + b'", "meta": {"shop": "\xc4\xe3"}}\n')
    (chunk,) = read_chunks(table_file(nested), text_col="text", id_col=None, chunk_size=10)
    assert chunk.table.column("meta").to_pylist() == [{"shop": "\ufffd\ufffd"}]
