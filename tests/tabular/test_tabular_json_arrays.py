"""A `.json` file holding one array: its elements are records, numbered from 1, with the rejects
of JSON Lines, read one element at a time however the array is laid out."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import DataError
from kefu.serving.batch.readers import read_chunks
from kefu.serving.report.load import read_scored
from kefu.tabular import (
    ReadOptions,
    Reject,
    decoding,
    estimate_records,
    read_blocks,
    read_columns,
    read_records,
    table_file,
)
from kefu.training.data.loader import load_labelled

runner = CliRunner()

ROWS = [
    {"id": "a", "text": "在吗", "intent": "greeting", "urgency": "low", "emotion": "neutral"},
    {"id": "b", "text": "我的快递三天没动了", "intent": "logistics_issue", "urgency": "high", "emotion": "anxious"},
    {"id": "c", "text": "发票,开了没]}", "intent": "invoice", "urgency": "medium", "emotion": "neutral"},
]  # fmt: skip
LAYOUTS = {  # how exports write one array: all on one line, pretty-printed, ASCII-escaped
    "one-line": json.dumps(ROWS, ensure_ascii=False),
    "indented": json.dumps(ROWS, ensure_ascii=False, indent=2) + "\n",
    "escaped": json.dumps(ROWS),
}


def values(path):
    return [(r.line, r.end_line, r.values, r.problem) for r in read_records(table_file(path))]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_array_of_objects_is_read_as_its_elements(tmp_path, layout):
    path = tmp_path / "rows.json"
    path.write_text(LAYOUTS[layout], encoding="utf-8")
    assert values(path) == [(n, n, row, None) for n, row in enumerate(ROWS, start=1)]
    assert read_columns(table_file(path)) == ["id", "text", "intent", "urgency", "emotion"]
    assert load_labelled(path).texts() == [row["text"] for row in ROWS]
    # one per object: the xlsx row limit is checked against it
    assert estimate_records(table_file(path)) == len(ROWS)


def test_a_compressed_array_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "rows.json.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + json.dumps(ROWS).encode()))
    assert [r.values for r in read_records(table_file(path))] == ROWS


def test_pieces_cut_anywhere_give_the_same_records(tmp_path, monkeypatch):
    """A one-line array is read in pieces, not as one line: cut inside strings, escapes and
    multi-byte characters, it reads the same."""
    path = tmp_path / "rows.json"
    text = json.dumps(ROWS, ensure_ascii=False).replace('"在吗"', '"在\\"吗\\\\"')
    path.write_text(text, encoding="utf-8")
    whole = values(path)
    for size in (1, 2, 3, 5, 7):
        monkeypatch.setattr(decoding, "PIECE_BYTES", size)
        assert max(len(p) for p in decoding.decoded_pieces(table_file(path), "utf-8")) <= size
        assert values(path) == whole
    assert whole[0][2]["text"] == '在"吗\\'


def test_elements_that_are_no_object_are_rejected_and_the_rest_read(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(
        json.dumps([ROWS[0], 5, "text", [ROWS[1]], None, ROWS[2]], ensure_ascii=False),
        encoding="utf-8",
    )
    assert [(r.line, r.problem) for r in read_records(table_file(path))] == [
        (1, None),
        (2, ("not_an_object", "found a JSON int")),
        (3, ("not_an_object", "found a JSON str")),
        (4, ("not_an_object", "found a JSON list")),  # a nested array is one element, no rows
        (5, ("not_an_object", "found a JSON NoneType")),
        (6, None),
    ]


def test_an_array_of_arrays_is_not_flattened(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([ROWS[:2], ROWS[2:]]), encoding="utf-8")
    assert [(r.line, r.problem) for r in read_records(table_file(path))] == [
        (1, ("not_an_object", "found a JSON list")),
        (2, ("not_an_object", "found a JSON list")),
    ]
    assert read_columns(table_file(path)) is None  # no object: a missing text column, named


@pytest.mark.parametrize("content", ["[]", "  \n[\n]\n\n"])
def test_an_empty_array_gives_one_empty_block(tmp_path, content):
    path = tmp_path / "rows.json"
    path.write_text(content, encoding="utf-8")
    assert read_columns(table_file(path)) is None
    (block,) = read_blocks(table_file(path), 10)
    assert (len(block), block.lines) == (0, 0)


def test_a_broken_element_is_a_reject_naming_its_line_and_the_rest_is_read(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(
        "[\n"
        '  {"id": "a", "text": "在吗"},\n'  # line 2
        '  {"id": "b", "text": "坏", },\n'  # line 3: a trailing comma in the object
        '  {"id": "c", "text": "没有闭合的引号},\n'  # line 4: a quote that never closes
        '  {"id": "d", "text": "好"},\n'
        "  ,\n"  # line 6: no value
        '  {"id": "e", "text": "' + "长" * 40 + '"}\n'
        "]\n",
        encoding="utf-8",
    )
    (block,) = read_blocks(table_file(path), 100, options=ReadOptions(max_record_chars=3))
    assert [(r.line, r.values and r.values["id"], r.problem) for r in block.records] == [
        (1, "a", None),
        (2, None, ("invalid_json", "Expecting property name enclosed in double quotes on line 3")),
        (3, None, ("invalid_json", "a string is not closed before the end of line 4")),
        (4, "d", None),
        (5, None, ("invalid_json", "no value between a ',' and the next ',' or ']' on line 6")),
        (6, None, ("record_too_long", "the element on line 7 holds more than 36 characters")),
    ]


def test_a_stray_brace_or_a_string_cut_by_its_line_costs_one_element(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(
        "\n\n[\n"  # the array opens on line 3
        '  {"id": "a", "text": "在吗"}},\n'  # line 4: a stray '}'
        '  {"text": "好"},\n'
        '  {"id": "b",\n'
        '   "text": "没有闭合的引号},\n'  # line 7: the string runs into the line's end
        '  {"id": "c", "text": "谢谢"}\n'
        "]\n",
        encoding="utf-8",
    )
    assert [(r.line, r.values and r.values["text"], r.problem) for r in read_records(table_file(path))] == [
        (1, None, ("invalid_json", "Extra data on line 4")),
        (2, "好", None),
        (3, None, ("invalid_json", "a string is not closed before the end of line 7")),
        (4, "谢谢", None),
    ]  # fmt: skip


def test_a_cut_off_array_ends_with_one_reject(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS, ensure_ascii=False)[:-20], encoding="utf-8")
    assert [(r.line, r.problem) for r in read_records(table_file(path))] == [
        (1, None),
        (2, None),
        (3, ("invalid_json", "the file ends before the array closes with ']' (element on line 1; a cut-off file?)")),
    ]  # fmt: skip


def test_anything_after_the_array_stops_the_file_naming_the_line(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS[:1]) + "\n\n" + json.dumps(ROWS[1:]), encoding="utf-8")
    with pytest.raises(DataError) as raised:
        list(read_records(table_file(path)))
    assert str(raised.value).startswith(
        f"file {path}, line 3: expected nothing after the JSON array's closing ']', found '[{{"
    )
    cut = tmp_path / "cut.json"  # half a character after the array: its byte is named
    cut.write_bytes(json.dumps(ROWS[:1]).encode() + b"\n" + "在".encode()[:1])
    with pytest.raises(DataError, match=r"line 2: expected nothing after .*found '\\udce5'"):
        list(read_records(table_file(cut)))


def test_score_train_and_report_give_the_same_rejects_numbered_by_element(tmp_path):
    path = tmp_path / "log.json"
    path.write_text(
        json.dumps([ROWS[0], 7, {**ROWS[1], "text": ""}, ROWS[2]], ensure_ascii=False),
        encoding="utf-8",
    )
    expected = [
        Reject(str(path), 2, 2, None, None, "not_an_object", "found a JSON int", "element"),
        Reject(str(path), 3, 3, "b", "text", "empty_text", "text is empty or holds only white space, markup or invisible characters", "element"),
    ]  # fmt: skip
    assert load_labelled(path).rejects == expected
    (chunk,) = read_chunks(table_file(path), text_col="text", id_col="id", chunk_size=10)
    assert chunk.rejects == [reject.to_dict() for reject in expected]
    assert [r.describe() for r in expected] == [
        f"{path}, element 2: found a JSON int",
        f"{path}, element 3, column 'text': text is empty or holds only white space, markup or "
        "invisible characters",
    ]
    # elements are the unit a JSON array is accounted in: 4 rows in 4 "lines"
    assert (chunk.counts.rows, chunk.counts.lines, chunk.counts.record_lines) == (4, 4, 4)
    (scored,) = read_scored(table_file(path), "text", None)
    # the report does not check texts; labelled rows have no escalate flag: counted out too
    assert [r for r in scored.rejects if r.reason != "missing_score"] == expected[:1]
    assert [(r.line, r.column) for r in scored.rejects if r.reason == "missing_score"] == [
        (1, "escalate"),
        (3, "escalate"),
        (4, "escalate"),
    ]


def test_blocks_of_an_array_are_cut_by_count_and_account_for_every_element(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS * 3), encoding="utf-8")
    blocks = list(read_blocks(table_file(path), 4))
    assert [[r.line for r in b.records] for b in blocks] == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert [b.lines for b in blocks] == [4, 4, 1]


def test_messages_name_elements_and_the_rejects_file_keeps_its_line_field(tmp_path):
    path = tmp_path / "x.json"
    rows = [ROWS[0], 7, ROWS[1], {**ROWS[2], "id": "a"}]
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    result = runner.invoke(app, ["data", "validate", str(path), "--rejects", str(rejects)])
    assert f"rejected: {path}, element 2: found a JSON int\n" in result.output
    assert f"rejected: {path}, element 4, column 'id': duplicate id 'a' (first on element 1)" in (
        result.output
    )
    written = [json.loads(line) for line in rejects.read_text("utf-8").splitlines()]
    assert [(r["line"], r["end_line"], r["reason"]) for r in written] == [
        (2, 2, "not_an_object"),
        (4, 4, "duplicate_id"),
    ]
    assert list(written[0]) == ["file", "line", "end_line", "id", "column", "reason", "detail"]
    with pytest.raises(DataError, match=r"\n  .*x\.json, element 2: found a JSON int"):
        load_labelled(path, strict=True)
    # the same file as JSON Lines keeps its physical lines
    lines = tmp_path / "x.jsonl"
    lines.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    (first, _) = load_labelled(lines).rejects
    assert first.describe() == f"{lines}, line 2: found a JSON int"
