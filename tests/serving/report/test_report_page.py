"""What reaches the report page: the summary cards, trends and queue table show the counts
computed, `--period auto` and the trends table change at the limits the README gives, and
nothing a scored file holds becomes markup."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.html_tables import Tables
from support.scored import scored_table

from kefu.serving.report import build_report
from kefu.serving.report.aggregate import PeriodStats, ReportData


def test_cards_and_trends_count_angry_and_dissatisfied_messages(tmp_path):
    """Row 2 is dissatisfied (2024-03-01), row 4 made angry (2024-03-03), row 8 angry (no
    readable time): 3 of 10 messages, 1 of the 4 dated 2024-03-01 and 1 of the 5 of 03-03."""
    rows = scored_table().to_pylist()
    rows[4]["emotion"] = "angry"
    path = tmp_path / "scored.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=scored_table().schema), path)
    out = tmp_path / "r.html"
    build_report([str(path)], out, time_col="created_at", period="day")
    page = out.read_text(encoding="utf-8")
    assert "<b>30.0%</b>angry or dissatisfied" in page
    assert Tables(page).tables["trends"][1:] == [
        ["2024-03-01", "4", "25.0%", "25.0%", "logistics_status"],
        ["2024-03-02", "0", "0.0%", "0.0%", "-"],
        ["2024-03-03", "5", "0.0%", "20.0%", "logistics_status"],
    ]


def test_messages_without_a_queue_are_in_no_queue_row(tmp_path):
    rows = scored_table().to_pylist()
    rows[0]["queue"] = rows[1]["queue"] = None
    path = tmp_path / "scored.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=scored_table().schema), path)
    out = tmp_path / "r.html"
    build_report([str(path)], out)
    page = out.read_text(encoding="utf-8")
    assert Tables(page).tables["queues"][1:] == [
        ["售前组", "7", "70.0%"],
        ["投诉专席", "1", "10.0%"],
    ]
    # the 20% the rows above do not add up to
    assert (
        '</table><p class="note">2 messages have no queue (a file scored before routing had one, '
        "or a blank cell) and are not listed (the shares are of all).</p>" in page
    )


@pytest.mark.parametrize(
    ("span_days", "unit"),
    [(60, "day"), (61, "week"), (731, "week"), (732, "month")],
)
def test_auto_period_is_days_up_to_60_days_then_weeks_up_to_two_years(span_days, unit):
    first = date(2024, 1, 1)
    data = ReportData()
    for day in (first, first + timedelta(days=span_days)):
        data.days[day] = PeriodStats(messages=1)
    assert data.periods("auto")[0] == unit


def test_customer_text_labels_queues_and_file_names_reach_the_page_as_text(tmp_path):
    """Nothing a scored file holds becomes markup: a text, an intent, a queue, a file name."""
    rows = scored_table().to_pylist()
    for row in rows:
        row["queue"] = "<i>组</i>"
    for row in rows[:3]:  # all 2024-03-01, one question: a cluster and that day's top intent
        row["text"] = "<script>alert(1)</script>我的快递怎么还没到"
        row["intent"] = "<b>物流</b>"
    path = tmp_path / "<导出>.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=scored_table().schema), path)
    out = tmp_path / "r.html"
    build_report([str(path)], out, time_col="created_at", period="day")
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page and "<i>" not in page and "<b>物流" not in page
    assert f"{tmp_path}/&lt;导出&gt;.parquet" in page
    tables = Tables(page).tables
    assert tables["queues"][1:] == [["<i>组</i>", "10", "100.0%"]]
    assert tables["queue-intents"][1][:2] == ["<i>组</i>", "<b>物流</b>"]
    assert tables["top-intents"][1][1] == "<b>物流</b>"
    assert tables["repeated-questions"][1][4] == "<script>alert(1)</script>我的快递怎么还没到"
    assert tables["trends"][1][4] == "<b>物流</b>"


@pytest.mark.parametrize(("last", "rows_listed"), [("2024-04-29", 120), ("2024-04-30", 2)])
def test_the_trends_table_lists_every_period_up_to_120(tmp_path, last, rows_listed):
    rows = scored_table().to_pylist()
    for i, row in enumerate(rows):
        row["created_at"] = "2024-01-01" if i < 5 else last
    path = tmp_path / "scored.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=scored_table().schema), path)
    out = tmp_path / "r.html"
    build_report([str(path)], out, time_col="created_at", period="day")
    page = out.read_text(encoding="utf-8")
    assert len(Tables(page).tables["trends"]) - 1 == rows_listed  # under the header row
    note = "119 of 121 periods have no messages and are not listed below"
    assert (note in page) == (rows_listed == 2)


def test_a_repeated_question_shows_the_share_of_its_main_intent(tmp_path):
    rows = scored_table().to_pylist()
    rows[5]["intent"] = "payment"  # 1 of the 6 messages of 我的快递怎么还没到
    path = tmp_path / "scored.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=scored_table().schema), path)
    out = tmp_path / "r.html"
    build_report([str(path)], out)
    questions = Tables(out.read_text(encoding="utf-8")).tables["repeated-questions"]
    assert questions[1][1:] == [
        "6",
        "60.0%",
        "3",
        "我的快递怎么还没到",
        "logistics_status 物流查询 (83.3%)",
    ]


def test_a_file_without_repeated_questions_says_so_instead_of_top_0(tmp_path):
    table = scored_table()
    distinct = ["在吗", "发票怎么开", "退款到哪了", "快递没到", "改地址", "能便宜吗", "有货吗"]
    distinct += ["密码忘了", "怎么付款", "谢谢"]
    path = tmp_path / "scored.parquet"
    pq.write_table(table.set_column(1, "text", pa.array(distinct)), path)
    out = tmp_path / "r.html"
    build_report([str(path)], out)
    page = out.read_text(encoding="utf-8")
    assert "TOP 0" not in page and "<h2>Repeated questions 高频重复问题</h2>" in page
    assert "Jaccard &ge; 0.6. No question was asked more than once.</p>" in page
    assert Tables(page).tables["repeated-questions"][1:] == []


def test_a_right_to_left_override_in_a_file_name_stays_inside_that_name(tmp_path):
    """U+202E in a file name (or a cell a reject quotes) would show the rest of the line
    backwards, model version and counts included; each value is isolated in a <bdi>."""
    rows = scored_table().to_pylist()
    rows[0]["intent"] = None  # a reject example, naming the file
    path = tmp_path / "day\u202e1.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=scored_table().schema), path)
    out = tmp_path / "r.html"
    build_report([str(path)], out)
    page = out.read_text(encoding="utf-8")
    assert f"from 1 file(s): <bdi>{path}</bdi>; model version <bdi>test-1</bdi> (9)</p>" in page
    assert f"; e.g. <bdi>{path}, row 1, column &#x27;intent&#x27;: intent is blank</bdi>" in page


def test_files_of_two_model_versions_are_said_to_be_counted_together(tmp_path):
    paths = []
    for version in ("v1", "v2"):
        rows = [{**row, "model_version": version} for row in scored_table().to_pylist()]
        paths.append(tmp_path / f"{version}.parquet")
        pq.write_table(pa.Table.from_pylist(rows, schema=scored_table().schema), paths[-1])
    for given, said in ((paths, True), (paths[:1], False)):
        out = tmp_path / "r.html"
        build_report([str(path) for path in given], out)
        page = out.read_text(encoding="utf-8")
        assert (
            "<b>2 model versions</b>: every number below counts their scores together" in page
        ) is said
