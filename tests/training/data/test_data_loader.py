import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import DataError
from kefu.training.data.loader import load_labelled, write_rejects

GOOD = {
    "id": "a1",
    "text": "我的快递三天没动了",
    "intent": "logistics_issue",
    "urgency": "high",
    "emotion": "anxious",
}


def _jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(row, ensure_ascii=False) for row in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_rows_and_partial_labels(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", [GOOD, {"id": "a2", "text": "在吗", "intent": "greeting"}])
    data = load_labelled(path)
    assert [row.id for row in data.rows] == ["a1", "a2"]
    assert data.rows[1].labels == {"intent": "greeting", "urgency": None, "emotion": None}
    assert data.rejects == []


@pytest.mark.parametrize(
    ("row", "column", "reason", "detail"),
    [
        ({"id": "b", "text": "   ", "intent": "other"}, "text", "empty_text", "text is empty or holds only white space, markup or invisible characters"),
        ({"id": "b", "text": "", "intent": "other"}, "text", "empty_text", "text is empty or holds only white space, markup or invisible characters"),
        ({"id": "b", "text": 42, "intent": "other"}, "text", "not_text", "text is a number, expected a string"),
        ({"id": "b", "intent": "other"}, "text", "missing_text", "text is null or absent"),
        ({"id": "b", "text": "hi", "intent": "refund"}, "intent", "unknown_label", "unknown intent label 'refund'"),
        ({"id": "b", "text": "hi", "urgency": "urgent"}, "urgency", "unknown_label", "unknown urgency label 'urgent'"),
        ({"id": "a1", "text": "hi", "intent": "other"}, "id", "duplicate_id", "duplicate id 'a1' (first on line 1)"),
        ({"id": "b", "text": "hi"}, None, "no_label", "row has no label for any head"),
    ],
)  # fmt: skip
def test_each_bad_row_is_rejected_with_line_and_column(tmp_path, row, column, reason, detail):
    data = load_labelled(_jsonl(tmp_path / "bad.jsonl", [GOOD, row]))
    assert len(data.rows) == 1
    (reject,) = data.rejects
    assert (reject.line, reject.end_line, reject.id, reject.column, reject.reason) == (
        2,
        2,
        row["id"],
        column,
        reason,
    )
    assert detail in reject.detail
    assert str(tmp_path / "bad.jsonl") in reject.describe()


def test_invalid_json_and_bad_encoding_are_rejects_not_tracebacks(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        json.dumps(GOOD).encode() + b"\n{not json\n" + b'{"text": "\xff\xfe", "intent": "other"}\n'
    )
    data = load_labelled(path)
    assert [(r.line, r.column, r.reason) for r in data.rejects] == [
        (2, None, "invalid_json"),
        (3, "text", "undecodable_text"),
    ]
    assert (
        data.rejects[1].detail
        == "invalid utf-8 byte 0xff at character 0 (if the file is not utf-8, pass --encoding gb18030)"
    )


def test_strict_turns_rejects_into_an_error_naming_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "s.jsonl", [GOOD, {"id": "x", "text": " ", "intent": "other"}])
    with pytest.raises(DataError, match=r"s\.jsonl.*line 2, column 'text': text is empty"):
        load_labelled(path, strict=True)


def test_missing_text_column_is_a_clear_error(tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", [{"content": "hi", "intent": "other"}])
    with pytest.raises(
        DataError, match="text column 'text' is missing; found columns \\['content', 'intent'\\]"
    ):
        load_labelled(path)
    assert load_labelled(path, text_col="content").rows[0].text == "hi"


def test_a_file_without_any_label_column_names_the_options_that_name_them(tmp_path):
    """A shop's export with Chinese headers: the error lists its columns as the file orders them
    and says which options name the label columns, on the commands and in training."""
    path = tmp_path / "shop.csv"
    path.write_text("工单号,content,意图,紧急程度\nT1,在吗,问候/感谢,低\n", encoding="utf-8")
    message = (
        "none of the label columns ['intent', 'urgency', 'emotion'] is present; found columns "
        "['工单号', 'content', '意图', '紧急程度']; name the ones that hold labels with "
        "--intent-col, --urgency-col, --emotion-col (kefu train: --set intent_column=NAME, ...)"
    )
    with pytest.raises(DataError, match=re.escape(message)):
        load_labelled(path, text_col="content")
    named = load_labelled(path, text_col="content", intent_col="意图", urgency_col="紧急程度")
    assert named.rows[0].labels == {"intent": "greeting", "urgency": "low", "emotion": None}


def test_csv_with_custom_columns_and_quoted_newline(tmp_path):
    path = tmp_path / "logs.csv"
    path.write_text('msg,label\n你好,greeting\n"第一行\n第二行",other\n,other\n', encoding="utf-8")
    data = load_labelled(path, text_col="msg", intent_col="label")
    assert [(row.text, row.line) for row in data.rows] == [("你好", 2), ("第一行\n第二行", 3)]
    assert [(r.line, r.column) for r in data.rejects] == [(5, "msg")]


def test_parquet_and_huggingface_dataset(tmp_path):
    import datasets

    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"text": ["退款", None], "intent": ["refund_return", "other"]}), path)
    data = load_labelled(path)
    assert [row.text for row in data.rows] == ["退款"]
    assert data.rejects[0].line == 2
    dataset = datasets.Dataset.from_dict({"text": ["转人工"], "intent": ["human_agent"]})
    assert load_labelled(dataset).rows[0].labels["intent"] == "human_agent"


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match="unknown input file type '.txt'"):
        load_labelled(tmp_path / "x.txt")
    with pytest.raises(DataError, match="does not exist"):
        load_labelled(tmp_path / "nope.jsonl")


def test_rejects_file_and_validate_command(tmp_path):
    path = _jsonl(tmp_path / "v.jsonl", [GOOD, {"id": "z", "text": "", "intent": "other"}])
    out = tmp_path / "rejects.jsonl"
    assert write_rejects(load_labelled(path).rejects, out) == 1
    assert json.loads(out.read_text()) == {
        "file": str(path),
        "line": 2,
        "end_line": 2,
        "id": "z",
        "column": "text",
        "reason": "empty_text",
        "detail": "text is empty or holds only white space, markup or invisible characters",
    }
    runner = CliRunner()
    result = runner.invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "1 usable rows, 1 rejected" in result.output
    strict = runner.invoke(app, ["data", "validate", str(path), "--strict"])
    assert strict.exit_code == 1
    assert "line 2, column 'text'" in strict.output
    nowhere = tmp_path / "no" / "rejects.jsonl"
    unwritable = runner.invoke(app, ["data", "validate", str(path), "--rejects", str(nowhere)])
    assert unwritable.exit_code == 1
    assert f"cannot write {nowhere}: No such file or directory" in unwritable.output
    assert "Traceback" not in unwritable.output
    strict_out = tmp_path / "strict-rejects.jsonl"
    strict_written = runner.invoke(
        app, ["data", "validate", str(path), "--strict", "--rejects", str(strict_out)]
    )
    assert strict_written.exit_code == 1
    assert f"1 rejected rows (strict mode); every one is in {strict_out}" in strict_written.output
    assert len(strict_out.read_text().splitlines()) == 1  # written before failing


def test_a_label_column_the_file_lacks_is_named_not_read_as_unlabelled_rows(tmp_path):
    """An Excel export (GBK, CRLF) whose intent column has another name: every row would be
    unlabelled for intent, so validate names the column it looked for and the ones it found."""
    path = tmp_path / "export.csv"
    path.write_bytes(
        "工单号,content,意图,urgency\r\nT1,我的快递三天没动了,物流异常,高\r\nT2,在吗,问候/感谢,低\r\n".encode(
            "gbk"
        )
    )
    data = load_labelled(path, text_col="content", id_col="工单号")
    assert data.missing_columns == {"intent": "intent", "emotion": "emotion"}
    assert [row.labels["intent"] for row in data.rows] == [None, None]
    result = CliRunner().invoke(app, ["data", "validate", str(path), "--text-col", "content"])
    assert result.exit_code == 0, result.output
    assert (
        f"note: {path}: no column 'intent', so no row is labelled for intent; columns found: "
        "工单号, content, 意图, urgency; if one of them holds the intent, name it with "
        "--intent-col NAME"
    ) in result.output
    named = CliRunner().invoke(
        app, ["data", "validate", str(path), "--text-col", "content", "--intent-col", "意图"]
    )
    assert named.exit_code == 0, named.output
    assert "no column 'intent'" not in named.output
    assert "no column 'emotion'" in named.output  # a file may label some heads only
    # the table lists the classes present; the ones absent are named (not for emotion: no labels)
    absent_intents = "product_info, promotion, bulk_purchase, order_status, order_change, payment"
    assert f"no row for: intent {absent_intents}," in named.output
    assert "refund_return" in named.output.split("no row for:")[1]
    assert "logistics_issue," not in named.output.split("no row for:")[1]
    assert "; urgency medium, critical (a model trained on this file alone does not" in named.output
    renamed = load_labelled(path, text_col="content", intent_col="意图", id_col="工单号")
    assert [row.labels["intent"] for row in renamed.rows] == ["logistics_issue", "greeting"]
    assert [row.id for row in renamed.rows] == ["T1", "T2"]


def test_a_json_key_seen_on_any_row_counts_as_a_column(tmp_path):
    rows = [{"id": f"r{i}", "text": "在吗", "intent": "greeting"} for i in range(1500)]
    rows.append({"id": "late", "text": "太慢了", "intent": "other", "emotion": "dissatisfied"})
    data = load_labelled(_jsonl(tmp_path / "late.jsonl", rows))
    assert data.missing_columns == {"urgency": "urgency"}
