"""Labels as people write them and exports of annotation tools, read from real files."""

import json

import pytest
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.training.data.loader import load_labelled

runner = CliRunner()


def test_chinese_names_and_near_spellings_resolve_to_ids(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "id,text,intent,urgency,emotion\n"
        "1,退款怎么还没到,退款退货,高,焦虑/着急\n"
        "2,屏幕碎了,质量问题,high,Dissatisfied\n"
        "3,在吗,Greeting,低,平静\n"
        "4,发票,invoice ,medium,neutral\n",
        encoding="utf-8",
    )
    data = load_labelled(path)
    assert [tuple(row.labels.values()) for row in data.rows] == [
        ("refund_return", "high", "anxious"),
        ("quality_issue", "high", "dissatisfied"),
        ("greeting", "low", "neutral"),
        ("invoice", "medium", "neutral"),
    ]


@pytest.mark.parametrize(
    ("value", "suggested"),
    [
        ("refund", "'refund_return'"),
        ("logistic_issue", "'logistics_issue'"),
        ("退款", "'refund_return'"),
    ],
)
def test_an_unknown_label_gets_the_closest_ids_suggested(tmp_path, value, suggested):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"text": "钱呢", "intent": value}, ensure_ascii=False) + "\n", "utf-8"
    )
    (reject,) = load_labelled(path).rejects
    assert reject.reason == "unknown_label" and reject.column == "intent"
    assert f"did you mean {suggested}" in reject.detail


def test_an_unknown_label_lists_the_ids_with_the_chinese_names_that_are_accepted(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"text": "钱呢", "intent": "other", "urgency": "urgent"}) + "\n", "utf-8"
    )
    (reject,) = load_labelled(path).rejects
    assert reject.detail == (
        "unknown urgency label 'urgent'; expected an id or its Chinese name (or one part of a "
        "name with /): low (低), medium (中), high (高), critical (紧急)"
    )
    path.write_text(json.dumps({"text": "钱呢", "intent": "费用"}) + "\n", "utf-8")
    (reject,) = load_labelled(path).rejects
    assert "price_protection (价保/差价), " in reject.detail
    accepted = reject.detail.split(": ", 1)[1].split(", ")
    assert len(accepted) == 21 and all(" (" in one for one in accepted)


def label_studio_export(path):
    def task(number, text, intent, urgency, emotion, cancelled=False):
        result = [
            {"from_name": head, "to_name": "text", "type": "choices", "value": {"choices": [v]}}
            for head, v in (("intent", intent), ("urgency", urgency), ("emotion", emotion))
            if v
        ]
        return {
            "id": number,
            "data": {"text": text},
            "annotations": [{"id": 10 + number, "result": result, "was_cancelled": cancelled}],
            "predictions": [],
        }

    tasks = [
        task(1, "退款怎么还没到账", "refund_return", "high", "anxious"),
        task(2, "在吗", "问候/感谢", "低", "平静"),
        task(3, "物流不动了", "logistics_issue", "high", "dissatisfied", cancelled=True),
        {"id": 4, "data": {"text": "还没标注"}, "annotations": []},
    ]
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def test_a_label_studio_json_export_is_read_as_downloaded(tmp_path):
    data = load_labelled(label_studio_export(tmp_path / "project-1-at-2026.json"))
    assert [(row.id, row.text, tuple(row.labels.values())) for row in data.rows] == [
        ("1", "退款怎么还没到账", ("refund_return", "high", "anxious")),
        ("2", "在吗", ("greeting", "low", "neutral")),
    ]
    assert [(r.line, r.reason) for r in data.rejects] == [(3, "no_label"), (4, "no_label")]


def test_a_doccano_jsonl_export_is_read_and_validated(tmp_path):
    path = tmp_path / "admin.jsonl"
    lines = [
        {"id": 7, "text": "快递三天没动", "label": ["logistics_issue", "high", "焦虑/着急"]},
        {"id": 8, "text": "谢谢", "label": ["intent:greeting", "low", "positive"]},
        {"id": 9, "text": "钱呢", "label": ["refund"]},
    ]
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    data = load_labelled(path)
    assert [(row.id, tuple(row.labels.values())) for row in data.rows] == [
        ("7", ("logistics_issue", "high", "anxious")),
        ("8", ("greeting", "low", "positive")),
    ]
    (reject,) = data.rejects
    assert reject.line == 3 and "did you mean 'refund_return'" in reject.detail
    result = runner.invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 0 and "2 usable rows, 1 rejected" in result.output


def test_a_broken_task_in_a_label_studio_export_is_a_reject_and_the_rest_is_read(tmp_path):
    path = label_studio_export(tmp_path / "project-2.json")
    tasks = json.loads(path.read_text("utf-8"))
    good = json.dumps(tasks[0], ensure_ascii=False)
    odd_result = {**tasks[1], "annotations": [{"result": ["intent"], "was_cancelled": False}]}
    path.write_text(
        "[\n"
        + f"  {good},\n"
        + '  {"id": 2, "data": {"text": "坏"},},\n'  # element 2: a trailing comma in the object
        + "  7,\n"  # element 3: no task
        + '  {"id": 4, "annotations": []},\n'  # element 4: no data object
        + f"  {json.dumps(odd_result, ensure_ascii=False)},\n"  # element 5: a result that is text
        + f"  {json.dumps({**tasks[0], 'id': 6, 'data': {'text': '退货了'}})}\n"
        + "]\n",
        encoding="utf-8",
    )
    data = load_labelled(path)
    assert [row.text for row in data.rows] == ["退款怎么还没到账", "退货了"]
    assert [(r.line, r.reason, r.detail) for r in data.rejects] == [
        (2, "invalid_json", "Expecting property name enclosed in double quotes on line 3"),
        (3, "not_an_object", "found a JSON int"),
        (4, "not_an_object", "task without a data object"),
        (5, "no_label", "row has no label for any head"),
    ]
    result = runner.invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 0
    assert f"rejected: {path}, element 3: found a JSON int\n" in result.output


def test_text_after_a_label_studio_export_stops_it_naming_the_line(tmp_path):
    path = label_studio_export(tmp_path / "project-3.json")
    path.write_text(path.read_text("utf-8") + "\n]\n", encoding="utf-8")
    result = runner.invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 1
    lines = len(path.read_text("utf-8").splitlines())
    assert result.output.startswith(
        f"kefu data validate: file {path}, line {lines}: expected nothing after the JSON "
        "array's closing ']'"
    )


def test_a_broken_line_in_a_doccano_export_is_a_reject_and_the_rest_is_read(tmp_path):
    path = tmp_path / "admin.jsonl"
    first = {"id": 7, "text": "快递三天没动", "label": ["logistics_issue", "high", "焦虑/着急"]}
    path.write_text(
        json.dumps(first, ensure_ascii=False)
        + '\n{"id": 8, "text": "谢谢", "label": ["greeting"]\n'  # the object never closes
        + json.dumps({**first, "id": 9}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    data = load_labelled(path)
    assert [row.id for row in data.rows] == ["7", "9"]
    (reject,) = data.rejects
    assert (reject.line, reject.reason, reject.describe()) == (
        2,
        "invalid_json",
        f"{path}, line 2: Expecting ',' delimiter (column 46)",
    )
