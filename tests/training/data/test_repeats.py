"""Repeated texts in a labelled file, and the ones labelled two ways, as `kefu data validate`
reports them."""

from __future__ import annotations

import json

from openpyxl import Workbook
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.training.data.loader import load_labelled
from kefu.training.data.repeats import find_repeats, fold_text

ROWS = [
    {"text": "在吗", "intent": "greeting", "urgency": "low", "emotion": "neutral"},
    {"text": "在吗 ", "intent": "greeting", "urgency": "low", "emotion": "neutral"},
    {"text": "我没收到", "intent": "logistics_issue", "urgency": "medium"},
    {"text": "在吗", "intent": "other", "urgency": "low", "emotion": "neutral"},
    {"text": "我没收到", "intent": "greeting", "urgency": "low"},
    {"text": "我没收到", "intent": "other", "urgency": "high"},
    {"text": "退款怎么还没到账", "intent": "refund_return"},
]


def test_fold_text_ignores_width_case_and_white_space():
    assert fold_text("ＯＫ 在吗\t") == fold_text("ok在吗")


def test_repeats_count_rows_and_name_each_head_labelled_two_ways_once(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS), "utf-8")
    repeats = find_repeats(load_labelled(path).rows)
    assert (repeats.texts, repeats.extra_rows) == (2, 4)
    assert [conflict.describe() for conflict in repeats.conflicts] == [
        "line 4 intent other where line 1 has greeting ('在吗')",
        "line 5 intent greeting where line 3 has logistics_issue ('我没收到')",
        "line 5 urgency low where line 3 has medium ('我没收到')",
    ]


def test_validate_prints_the_repeats_in_the_files_own_unit(tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(["text", "intent", "urgency", "emotion"])
    for row in ROWS:
        sheet.append([row.get(name) for name in ("text", "intent", "urgency", "emotion")])
    book.save(tmp_path / "rows.xlsx")
    done = CliRunner().invoke(app, ["data", "validate", str(tmp_path / "rows.xlsx")])
    assert done.exit_code == 0, done.output
    assert (
        "repeated texts: 2 texts on 4 more rows (trained again each time); labelled two ways: 3"
        in done.output
    )
    assert "  row 5 intent other where row 2 has greeting ('在吗')" in done.output
