"""`kefu report`: exact counts in the HTML tables, clusters, trends, inputs, errors, fonts."""

from __future__ import annotations

import base64
import json
import random
import re
import tracemalloc
import warnings

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.html_tables import Tables
from support.scored import scored_table
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.serving.report import build_report
from kefu.serving.report.charts import MAX_BARS, bar_chart
from kefu.serving.report.clusters import EXAMPLE_CHARS, QuestionCounter, normalise_question

runner = CliRunner()


def test_report_tables_hold_exact_counts(tmp_path, scored):
    out = tmp_path / "report.html"
    data = build_report([str(scored)], out, time_col="created_at", top_n=2, period="day")
    page = Tables(out.read_text(encoding="utf-8"))
    intents = page.tables["top-intents"]
    assert intents[0] == ["#", "intent", "名称", "messages", "share", "escalated"]
    assert intents[1][:2] + intents[1][3:] == ["1", "logistics_status", "6", "60.0%", "0.0%"]
    assert intents[2][1] == "invoice" and len(intents) == 3  # TOP-2
    assert intents[2][3:] == ["2", "20.0%", "50.0%"]  # 1 of its 2 messages escalates
    assert page.tables["escalation-reasons"][1:] == [  # equal counts: by name
        ["angry", "1", "50.0%"],
        ["complaint", "1", "50.0%"],
        ["low_confidence", "1", "50.0%"],
    ]
    assert "2 of 10 messages escalate (20.0%)" in out.read_text(encoding="utf-8")
    assert [row[0] for row in page.tables["urgency"][1:]] == ["low", "medium", "high", "critical"]
    assert page.tables["queues"][1] == ["售前组", "9", "90.0%"]
    trends = page.tables["trends"]
    assert [row[:3] for row in trends[1:]] == [
        ["2024-03-01", "4", "25.0%"],
        ["2024-03-02", "0", "0.0%"],
        ["2024-03-03", "5", "0.0%"],
    ]
    assert data.undated == 1  # "not a time" is counted out, not guessed


def test_repeated_questions_cluster_near_duplicates(tmp_path, scored):
    out = tmp_path / "report.html"
    build_report([str(scored)], out)
    questions = Tables(out.read_text(encoding="utf-8")).tables["repeated-questions"]
    rank, count, share, variants, example, intent = questions[1]
    assert (rank, count, share, variants, example) == ("1", "6", "60.0%", "3", "我的快递怎么还没到")
    assert intent.startswith("logistics_status")
    assert questions[2][1:4] == ["2", "20.0%", "2"]  # 发票怎么开 / 发票怎么开呢
    assert len(questions) == 3  # one-off messages are not "repeated"


def test_question_normalisation_folds_spellings():
    assert normalise_question("我的快递 怎么还没到？？") == normalise_question(
        "我的快递怎么还没到!"
    )
    assert normalise_question("订单[订单x]退款12") == normalise_question("订单[订单y]退款 345")
    assert normalise_question("ＯＫ👍") == "ok"
    assert normalise_question("🙂！！") == ""


def test_a_long_example_is_cut_between_whole_characters_and_marked():
    counter = QuestionCounter()
    # 119 characters, then a hand and its skin tone: a plain cut at 120 kept the hand alone
    head = "我的快递怎么还没到" * 13 + "啊啊"
    for _ in range(2):
        counter.add(head + "👍🏽" * 5, "logistics")
    (cluster,) = counter.top(1)
    assert cluster.example == head + "…"
    assert len(cluster.example) <= EXAMPLE_CHARS
    counter.add("短的问题", "other")
    counter.add("短的问题", "other")
    assert counter.top(2)[1].example == "短的问题"  # a short one is shown whole


def test_question_counter_keeps_memory_bounded():
    counter = QuestionCounter(max_forms=10)
    for i in range(50):
        counter.add(f"一次性{chr(0x4E00 + i)}{chr(0x4E80 + i)}", "other")
        counter.add("重复的问题", "other")
    assert len(counter.forms) <= 10 and counter.pruned > 0
    assert counter.top(1)[0].count == 50


def test_one_off_spellings_of_one_question_keep_counting_when_memory_is_full():
    """60 spellings of one question, each seen once, among 240 unrelated one-off texts, with
    room for 20 forms: merged at each pruning, the question keeps all 60 messages (dropping
    one-off forms kept only those seen since the last pruning)."""
    rng = random.Random(5)
    counter = QuestionCounter(max_forms=20)
    question = "请问我的订单什么时候发货可以帮我催一下吗"
    for i in range(300):
        if i % 5 == 0:  # the question, with a different tail each time
            counter.add(
                question + "".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(2)),
                "urge_shipment",
            )
        else:
            counter.add("".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(12)), "other")
    top = counter.top(2)
    assert [(c.count, c.variants, c.intent) for c in top] == [(60, 60, "urge_shipment")]
    still_held = sum(form.intents["other"] for form in counter.forms.values())
    assert counter.pruned + still_held == 240 and len(counter.forms) <= 20


def test_clustering_many_long_forms_holds_no_bigram_sets_for_all_of_them():
    """Distinct long pastes: clustering holds band keys, not every form's bigrams, and hashes
    in blocks of bounded size (3,000 forms of 300 characters peaked at 920 MiB before)."""
    rng = random.Random(3)
    counter = QuestionCounter()
    base = "".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(300))
    for _ in range(3_000):
        counter.add("".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(300)), "other")
    for i in range(5):  # one repeated question in five spellings of one long form
        counter.add(base[: 300 - i], "invoice")
    tracemalloc.start()
    top = counter.top(3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(c.count, c.variants, c.intent) for c in top] == [(5, 5, "invoice")]
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # 11 MiB measured


def test_csv_and_jsonl_scored_files_give_the_same_report_data(tmp_path, scored, tiny_bundle):
    from support.chat_logs import chat_log, write_jsonl

    from kefu.serving.batch import ScoreJob, run_local

    source = write_jsonl(chat_log(200), tmp_path / "log.jsonl")
    results = {}
    for suffix in ("parquet", "csv", "jsonl"):
        output = tmp_path / f"scored.{suffix}"
        run_local(ScoreJob(inputs=[str(source)], output=output, bundle=tiny_bundle, progress=False))
        data = build_report([str(output)], tmp_path / f"{suffix}.html", time_col="created_at")
        results[suffix] = (
            data.rows,
            data.intents,
            data.emotions,
            data.reasons,
            data.escalated,
            {d: s.messages for d, s in data.days.items()},
        )
    assert results["parquet"] == results["csv"] == results["jsonl"]
    assert results["parquet"][0] > 0


def test_weekly_trends_start_on_monday(tmp_path, scored):
    out = tmp_path / "report.html"
    build_report([str(scored)], out, time_col="created_at", period="week")
    trends = Tables(out.read_text(encoding="utf-8")).tables["trends"]
    assert trends[0][0] == "week" and [row[:2] for row in trends[1:]] == [["2024-02-26", "9"]]


def test_a_stray_date_years_away_gives_months_and_a_short_table(tmp_path, scored):
    """One epoch-0 style date in a March log: auto picks months (not 2,800 weeks), the table
    lists the months with messages and says how many it leaves out; --period day stays whole
    up to the table's limit."""
    rows = pq.read_table(scored).to_pylist()
    rows[0]["created_at"] = "1970-01-01 08:00:00"
    path = tmp_path / "stray.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(scored)), path)
    out = tmp_path / "r.html"
    build_report([str(path)], out, time_col="created_at")
    page = out.read_text(encoding="utf-8")
    trends = Tables(page).tables["trends"]
    assert trends[0][0] == "month"
    assert [row[:2] for row in trends[1:]] == [["1970-01-01", "1"], ["2024-03-01", "8"]]
    assert "649 of 651 periods have no messages and are not listed below" in page
    build_report([str(scored)], out, time_col="created_at", period="month")
    assert [row[:2] for row in Tables(out.read_text("utf-8")).tables["trends"][1:]] == [
        ["2024-03-01", "9"]
    ]


def test_the_page_is_self_contained(tmp_path, scored):
    out = tmp_path / "report.html"
    build_report([str(scored)], out, time_col="created_at")
    html = out.read_text(encoding="utf-8")
    page = Tables(html)
    assert set(page.images) == {
        "chart-intent", "chart-urgency", "chart-emotion", "chart-reasons",
        "chart-trend-volume", "chart-trend-emotion", "chart-trend-escalation",
    }  # fmt: skip
    assert all(src.startswith("data:image/png;base64,") for src in page.images.values())
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html


def test_charts_have_no_missing_glyphs(tmp_path, scored):
    """With a CJK font the labels are Chinese; without one they fall back to ids: never tofu."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*[Gg]lyph.*missing")
        build_report([str(scored)], tmp_path / "report.html", time_col="created_at")


def test_texts_of_many_lines_long_texts_and_odd_labels_are_reported(tmp_path):
    table = scored_table()
    texts = table.column("text").to_pylist()
    texts[0] = "\n".join(["第一行", *["又一行"] * 12])  # a JSONL input's message, CSV-written
    texts[1] = "长" * 19_990  # within the text limit, plus the score columns
    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts))
    reasons = table.column("reasons").to_pylist()
    reasons[6] = ["cost_$\\foo{$"]  # a label with TeX syntax is text in a chart
    table = table.set_column(
        table.schema.get_field_index("reasons"), "reasons", pa.array(reasons, pa.list_(pa.string()))
    )
    path = tmp_path / "scored.csv"
    for index, column in enumerate(table.schema):  # lists as kefu score writes them in CSV
        if pa.types.is_list(column.type):
            joined = [";".join(map(str, v or [])) for v in table.column(index).to_pylist()]
            table = table.set_column(index, column.name, pa.array(joined))
    pacsv.write_csv(table, path)
    data = build_report([str(path)], tmp_path / "r.html")
    assert (data.rows, data.rejected) == (10, 0)


def test_unreadable_records_are_named_on_the_page(tmp_path, scored):
    path = tmp_path / "scored.jsonl"
    rows = pq.read_table(scored).to_pylist()
    lines = [json.dumps(row, ensure_ascii=False) for row in rows] + ['{"broken']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = build_report([str(path)], tmp_path / "r.html")
    assert data.rejected == 1
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "1 record(s) left out</b> (not in any number below): invalid_json 1 (" in page


def test_question_forms_are_bounded_whatever_the_text_length():
    assert len(normalise_question("长" * 20_000)) == 300


def test_label_cells_of_another_type_are_read_as_text(tmp_path, scored):
    rows = pq.read_table(scored).to_pylist()
    rows[0]["priority"], rows[1]["queue"] = 2, 7  # a hand-edited or foreign JSONL export
    path = tmp_path / "scored.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    data = build_report([str(path)], tmp_path / "r.html")
    assert (data.priorities["2"], data.queues["7"], data.rows) == (1, 1, 10)


@pytest.mark.parametrize("suffix", ["parquet", "csv", "xlsx"])
def test_chinese_dates_give_day_trends_from_score_to_report(tmp_path, tiny_bundle, suffix):
    """A real export's time column in Chinese dates (2024年3月1日 10:00, 10点30分), scored by
    `kefu score` and reported by `kefu report --time-col`: the same reader as the scoring's
    (kefu/serving/timestamps.py) puts each message on its day; a day without messages is shown
    as 0, an unreadable time is counted out, and the page says so."""
    times = [
        "2024年3月1日 10:00",
        "2024年3月1日 23:59",
        "2024年3月1日10点30分",
        "2024年3月3日 9:05",
        "2024年3月3号 10：30",  # 号 and a full-width colon, as typed
        "昨天下午",  # not a time
    ]
    texts = ["我的快递什么时候到", "发票怎么开", "在吗", "我要退款", "快递到哪了", "你好"]
    source = tmp_path / "导出.csv"
    rows = zip(texts, times, strict=True)
    lines = [f"{i},{text},{time}\n" for i, (text, time) in enumerate(rows)]
    source.write_text("编号,内容,时间\n" + "".join(lines), encoding="utf-8")
    scored = tmp_path / f"scored.{suffix}"
    result = runner.invoke(
        app,
        ["score", str(source), "-o", str(scored), "--bundle", str(tiny_bundle)]
        + ["--text-col", "内容", "--id-col", "编号", "--workers", "1", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "report.html"
    result = runner.invoke(
        app,
        ["report", str(scored), "-o", str(out), "--text-col", "内容", "--time-col", "时间"]
        + ["--period", "day"],
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    trends = Tables(page).tables["trends"]
    assert trends[0][0] == "day"
    assert [row[:2] for row in trends[1:]] == [
        ["2024-03-01", "3"],
        ["2024-03-02", "0"],
        ["2024-03-03", "2"],
    ]
    assert "1 messages have no readable time and are left out." in page


def test_a_chart_of_thousands_of_labels_draws_the_busiest_and_one_bar_for_the_rest():
    """A free-text label column drew one bar per label: 3,000 made a 96,000-pixel image."""
    labels = [f"label_{i}" for i in range(3000)]

    def height(count: int) -> int:
        png = base64.b64decode(bar_chart(labels[:count], list(range(count, 0, -1)), "t"))
        return int.from_bytes(png[20:24], "big")  # the IHDR's height

    assert height(3000) == height(MAX_BARS) < 2000
    assert height(MAX_BARS) > height(MAX_BARS - 1)
