"""Rows the report cannot count are counted out and named, and routing shares say what they
leave out: a blank label must not become a label of its own, nor a blank flag a "no"."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.html_tables import Tables
from support.scored import scored_table
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.serving.report import build_report

runner = CliRunner()


def with_blanks() -> pa.Table:
    """The 10 scored rows with row 1 missing its intent, row 2 a blank emotion and row 3 an
    escalate flag that is neither true nor false; rows 4.. stay usable."""
    rows = scored_table().to_pylist()
    rows[0]["intent"] = None
    rows[1]["emotion"] = " "
    rows[2]["escalate"] = None
    return pa.Table.from_pylist(rows, schema=scored_table().schema)


def as_csv(table: pa.Table, path) -> None:
    """CSV cells as kefu score writes them: lists joined with ";"."""
    for index, column in enumerate(table.schema):
        if pa.types.is_list(column.type):
            joined = [";".join(v or []) for v in table.column(index).to_pylist()]
            table = table.set_column(index, column.name, pa.array(joined))
    pacsv.write_csv(table, path)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_rows_with_blank_score_cells_are_counted_out_and_named(tmp_path, suffix):
    path = tmp_path / f"scored.{suffix}"
    if suffix == "parquet":
        pq.write_table(with_blanks(), path)
    else:
        as_csv(with_blanks(), path)
        text = path.read_text(encoding="utf-8").splitlines()
        text[3] = text[3].replace(",false,", ",maybe,", 1)  # row 3: an unreadable flag
        path.write_text("\n".join(text) + "\n", encoding="utf-8")
    out = tmp_path / "r.html"
    data = build_report([str(path)], out)
    assert (data.rows, data.rejected, data.rejected_by_reason["missing_score"]) == (7, 3, 3)
    assert "None" not in data.intents and " " not in data.emotions
    page = out.read_text(encoding="utf-8")
    assert "<b>3 record(s) left out</b> (not in any number below): missing_score 3 (" in page
    unit = "row 1" if suffix == "parquet" else "line 2"
    assert f"{path}, {unit}, column &#x27;intent&#x27;: intent is blank" in page
    tables = Tables(page).tables
    # rows 4-10 only: 3 logistics_status, 1 invoice (escalated), 1 complaint (escalated), ...
    top = tables["top-intents"][1]
    assert [top[1], top[3], top[4]] == ["logistics_status", "3", "42.9%"]
    assert all(row[0] for row in tables["emotion"][1:])  # no row for a blank emotion
    assert "2 of 7 messages escalate (28.6%)" in page
    written = [
        json.loads(line) for line in Path(f"{out}.rejects.jsonl").read_text("utf-8").splitlines()
    ]
    assert [(reject["line"], reject["column"], reject["reason"]) for reject in written] == [
        (int(unit.split()[1]) + number, column, "missing_score")
        for number, column in enumerate(["intent", "emotion", "escalate"])
    ]


def test_the_cli_names_the_rows_it_left_out(tmp_path):
    path = tmp_path / "scored.parquet"
    pq.write_table(with_blanks(), path)
    result = runner.invoke(app, ["report", str(path), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("3 records left out of the report: missing_score 3 (")
    assert lines[2:] == [
        f"rejected: {path}, row 1, column 'intent': intent is blank",
        f"rejected: {path}, row 2, column 'emotion': emotion is blank",
        f"rejected: {path}, row 3, column 'escalate': escalate is blank",
        f"every one is in {tmp_path / 'r.html'}.rejects.jsonl",
    ]


def test_routing_shares_say_which_messages_they_leave_out(tmp_path):
    """A file scored before actions (no action, priority or session columns) next to one
    with them: the shares are of the routed rows, and the page counts the others."""
    old = tmp_path / "old.parquet"
    pq.write_table(scored_table().drop_columns(["action", "priority", "session_id"]), old)
    rows = scored_table().to_pylist()
    for i, row in enumerate(rows[:4]):
        row.update(action="human" if i == 0 else "bot", priority="P3", session_id=f"s{i}")
    new = tmp_path / "new.parquet"
    pq.write_table(pa.Table.from_pylist(rows[:4], schema=scored_table().schema), new)
    out = tmp_path / "r.html"
    data = build_report([str(old), str(new)], out)
    assert data.rows == 14
    page = out.read_text(encoding="utf-8")
    tables = Tables(page).tables
    assert tables["actions"][1:] == [
        ["bot", "机器人答复", "3", "75.0%"],
        ["human", "转人工", "1", "25.0%"],
    ]
    assert tables["priorities"][1:] == [
        ["P0", "紧急", "0", "0.0%"],
        ["P1", "高", "0", "0.0%"],
        ["P2", "中", "0", "0.0%"],
        ["P3", "低", "4", "100.0%"],
    ]
    assert "10 messages have no action (" in page and "10 messages have no priority (" in page
    assert "4 conversations (4 messages)" in page
    assert "10 messages have no session id (" in page


def test_the_page_counts_every_reason_records_were_left_out_for(tmp_path):
    rows = scored_table().to_pylist()
    rows[3]["intent"] = None
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines.insert(1, '{"broken')
    path = tmp_path / "scored.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_report([str(path)], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert (
        "<b>2 record(s) left out</b> (not in any number below): invalid_json 1 (the JSONL line "
        "is not valid JSON), missing_score 1 (a score cell (intent, urgency, emotion, escalate) "
        f"is blank or unreadable, or reasons is unreadable); e.g. <bdi>{path}, line 2: " in page
    )
    assert f"; <bdi>{path}, line 5, column &#x27;intent&#x27;: intent is blank</bdi></p>" in page


def test_a_reasons_cell_printed_by_pandas_is_counted_out_by_line(tmp_path):
    """A scored Parquet file saved as CSV by pandas holds "['a' 'b']" for a list: that row is
    a missing_score reject naming its line and cell, and the other rows still make the page."""
    path = tmp_path / "scored.csv"
    as_csv(scored_table(), path)
    text = path.read_text(encoding="utf-8")
    # row 7, line 8: the only reasons cell that is exactly "low_confidence"
    path.write_text(
        text.replace(',"low_confidence",', ",\"['low_confidence' 'complaint']\",", 1),
        encoding="utf-8",
    )
    data = build_report([str(path)], tmp_path / "r.html")
    assert (data.rows, data.rejected_by_reason["missing_score"]) == (9, 1)
    assert [reject.describe() for reject in data.reject_examples] == [
        f"{path}, line 8, column 'reasons': reasons is \"['low_confidence' 'complaint']\", "
        "expected reason codes joined with ; or a JSON list"
    ]


def test_a_reasons_cell_that_is_a_number_is_counted_out(tmp_path):
    rows = scored_table().to_pylist()
    rows[1]["reasons"] = 5
    path = tmp_path / "scored.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    data = build_report([str(path)], tmp_path / "r.html")
    assert (data.rows, data.rejected_by_reason["missing_score"]) == (9, 1)
    assert data.reject_examples[0].describe() == (
        f"{path}, line 2, column 'reasons': reasons is 5, expected reason codes joined with ; "
        "or a JSON list"
    )


def test_undecodable_bytes_in_a_queue_cell_are_replaced_on_the_page(tmp_path):
    """A lone surrogate (a byte the encoding cannot decode) in any cell, not only the text,
    stopped the page from being written as UTF-8."""
    path = tmp_path / "scored.csv"
    as_csv(scored_table(), path)
    raw = path.read_bytes().replace("投诉专席".encode(), "投诉专席".encode() + b"\xff", 1)
    path.write_bytes(raw)
    out = tmp_path / "r.html"
    build_report([str(path)], out, encoding="utf-8")
    queues = Tables(out.read_text(encoding="utf-8")).tables["queues"]
    assert ["投诉专席\ufffd", "1", "10.0%"] in queues


def test_a_long_unreadable_cell_is_quoted_cut_in_the_reject(tmp_path):
    """A 20,000-character escalate cell put 80 KB on stderr and in the page's header."""
    rows = scored_table().to_pylist()
    rows[1]["escalate"] = "长" * 20_000
    path = tmp_path / "scored.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    data = build_report([str(path)], tmp_path / "r.html")
    assert data.reject_examples[0].detail == f"escalate is '{'长' * 38}…, expected true or false"
