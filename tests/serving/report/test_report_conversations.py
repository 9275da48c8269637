"""The report's routing sections: action mix, priorities, queue x intent, and the conversation
view of a file scored with `--session-col` (share handed over, at which turn, why)."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.chat_logs import write_jsonl
from support.conversations import conversations
from support.html_tables import Tables

from kefu.serving.batch import ScoreJob, run_local
from kefu.serving.batch.scoring import SCORE_SCHEMA
from kefu.serving.report import build_report
from kefu.serving.report.routing_view import MAX_QUEUES

# (session, turn, intent, queue, priority, action, reasons)
ROUTES = [
    ("c1", 1, "logistics_status", "物流组", "P2", "bot", []),
    ("c1", 2, "logistics_status", "物流组", "P2", "bot", []),
    ("c1", 3, "human_agent", "投诉专席", "P2", "human", ["human_requested"]),
    ("c2", 1, "invoice", "售后组", "P3", "clarify", ["low_confidence"]),
    ("c2", 2, "invoice", "售后组", "P3", "bot", []),
    ("c3", 1, "payment", "订单支付组", "P2", "clarify", ["low_confidence"]),
    ("c3", 2, "payment", "订单支付组", "P2", "human", ["low_confidence", "clarification_failed"]),
    ("c4", 2, "complaint", "投诉专席", "P1", "human", ["complaint", "angry", "repeated_intent"]),
    ("c4", 1, "complaint", "投诉专席", "P1", "human", ["complaint", "angry"]),
    *[("c5", turn, "product_info", "售前组", "P3", "bot", []) for turn in range(1, 7)],
    ("c5", 7, "product_info", "售前组", "P3", "human", ["long_conversation", "repeated_intent"]),
    (None, None, "greeting", "机器人自助", "P3", "bot", []),
]


def routed_table(routes=ROUTES) -> pa.Table:
    rows = []
    for i, (session, turn, intent, queue, priority, action, reasons) in enumerate(routes):
        rows.append(
            {
                "msg_id": f"m{i}",
                "text": f"消息{i}",
                "intent": intent,
                "urgency": "medium",
                "emotion": "angry" if "angry" in reasons else "neutral",
                "queue": queue,
                "priority": priority,
                "action": action,
                "escalate": action == "human",
                "reasons": reasons,
                "candidates": [],
                "session_id": session,
                "session_turn": turn,
            }
        )
    random.Random(1).shuffle(rows)  # input order is not conversation order
    schema = pa.schema([("msg_id", pa.string()), ("text", pa.string()), *SCORE_SCHEMA])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture
def routed(tmp_path) -> Path:
    path = tmp_path / "routed.parquet"
    pq.write_table(routed_table(), path)
    return path


def test_routing_tables_hold_exact_counts(tmp_path, routed):
    out = tmp_path / "report.html"
    build_report([str(routed)], out)
    html = out.read_text(encoding="utf-8")
    page = Tables(html)
    assert (
        "The bot answers 58.8% of messages, asks the customer to choose for 11.8% and hands "
        "29.4% to a person." in html
    )
    assert page.tables["actions"][1:] == [
        ["bot", "机器人答复", "10", "58.8%"],
        ["clarify", "澄清追问", "2", "11.8%"],
        ["human", "转人工", "5", "29.4%"],
    ]
    assert page.tables["priorities"][1:] == [
        ["P0", "紧急", "0", "0.0%"],  # listed at zero: no P0 is news too
        ["P1", "高", "2", "11.8%"],
        ["P2", "中", "5", "29.4%"],
        ["P3", "低", "10", "58.8%"],
    ]
    queue_intents = page.tables["queue-intents"]
    assert queue_intents[0] == [
        "queue 队列",
        "intent",
        "名称",
        "messages",
        "share of queue",
        "to a person",
    ]
    # busiest queue first, then by name; in a queue, its busiest intent first
    assert queue_intents[1:] == [
        ["售前组", "product_info", "商品咨询", "7", "100.0%", "14.3%"],
        ["投诉专席", "complaint", "投诉/升级", "2", "66.7%", "100.0%"],
        ["投诉专席", "human_agent", "转人工", "1", "33.3%", "100.0%"],
        ["售后组", "invoice", "发票", "2", "100.0%", "0.0%"],
        ["物流组", "logistics_status", "物流查询", "2", "100.0%", "0.0%"],
        ["订单支付组", "payment", "支付问题", "2", "100.0%", "50.0%"],
        ["机器人自助", "greeting", "问候/感谢", "1", "100.0%", "0.0%"],
    ]
    assert "chart-actions" in page.images


def test_queue_tables_list_the_busiest_queues_and_count_the_rest(tmp_path):
    # a hand-edited queue column: queue q00 has 20 messages, q01 19, ... q14 6
    routes = [
        (None, None, "payment", f"q{rank:02d}", "P2", "bot", [])
        for rank in range(15)
        for _ in range(20 - rank)
    ]
    path = tmp_path / "queues.parquet"
    pq.write_table(routed_table(routes), path)
    build_report([str(path)], tmp_path / "queues.html")
    html = (tmp_path / "queues.html").read_text(encoding="utf-8")
    page = Tables(html)
    busiest = [f"q{rank:02d}" for rank in range(MAX_QUEUES)]
    assert [row[0] for row in page.tables["queues"][1:]] == busiest
    assert [row[0] for row in page.tables["queue-intents"][1:]] == busiest
    # q12, q13 and q14: 8 + 7 + 6 messages, under both tables
    note = "3 quieter queues (21 messages) are not listed: only the 12 busiest are."
    assert html.count(note) == 2


def test_conversation_view_hand_over_share_turn_and_why(tmp_path, routed):
    out = tmp_path / "report.html"
    data = build_report([str(routed)], out)
    html = out.read_text(encoding="utf-8")
    page = Tables(html)
    assert "5 conversations (16 messages): 4 handed to a person (80.0%)" in html
    assert (
        "the bot asked 2 to clarify (40.0%), and 1 of them went on with the bot and needed no "
        "person afterwards" in html
    )
    assert page.tables["handover-turns"][1:] == [
        ["1", "1", "25.0%"],  # c4: the earliest human turn, whatever the file order
        ["2", "1", "25.0%"],
        ["3", "1", "25.0%"],
        ["4", "0", "0.0%"],
        ["5", "0", "0.0%"],
        ["6+", "1", "25.0%"],
    ]
    reasons = {row[0]: row[1:] for row in page.tables["handover-reasons"][1:]}
    assert reasons == {  # of the 4 conversations handed over
        "human_requested": ["1", "25.0%"],
        "low_confidence": ["1", "25.0%"],
        "clarification_failed": ["1", "25.0%"],
        "complaint": ["1", "25.0%"],
        "angry": ["1", "25.0%"],
        "long_conversation": ["1", "25.0%"],
        "repeated_intent": ["1", "25.0%"],
    }
    assert "chart-handover-turn" in page.images
    assert data.conversations.count == 5


def orders(session: str, *actions: str) -> list[tuple]:
    """One session's routes, turn 1 first: each action with the reasons it carries."""
    reasons = {"bot": [], "clarify": ["low_confidence"], "human": ["human_requested"]}
    return [
        (session, turn, "payment", "订单支付组", "P2", action, reasons[action])
        for turn, action in enumerate(actions, start=1)
    ]


def test_clarified_then_bot_counts_a_clarify_followed_by_the_bot_and_no_person(tmp_path):
    routes = [
        *orders("a1", "clarify", "bot"),  # counted
        *orders("b1", "bot", "clarify"),  # the customer left after the question: not counted
        *orders("b2", "bot", "clarify"),
        *orders("c1", "clarify", "human"),  # a person after the question: not counted
        *orders("d1", "human", "clarify", "bot"),  # the person came before it: counted
        *orders("d2", "human", "clarify", "bot"),
        *orders("d3", "human", "clarify", "bot", "bot"),
    ]
    path = tmp_path / "orders.parquet"
    pq.write_table(routed_table(routes), path)  # rows shuffled: file order is not turn order
    build_report([str(path)], tmp_path / "orders.html")
    html = (tmp_path / "orders.html").read_text(encoding="utf-8")
    assert (
        "the bot asked 7 to clarify (100.0%), and 4 of them went on with the bot and needed no "
        "person afterwards" in html
    )


@pytest.mark.parametrize(
    ("rows", "counted"),
    [
        ([(1, "clarify"), (2, "bot"), (3, "clarify")], True),  # after the first: bot, no person
        ([(1, "clarify"), (2, "bot"), (3, "human")], False),
        ([(1, "clarify"), (2, "human"), (3, "clarify"), (4, "bot")], False),
        ([(2, "clarify"), (1, "bot")], False),  # placed by turn number, not by row order
        ([(1, "clarify"), (2, "bot"), (None, "human")], False),  # may be after the clarify
        ([(1, "clarify"), (None, "bot")], False),  # an unplaced bot turn shows nothing
        ([(None, "clarify"), (2, "bot")], False),
        ([(2, "clarify"), (2, "bot")], False),  # one turn number: the bot is not after it
        ([(2, "human"), (2, "clarify"), (3, "bot")], False),  # the person may be after it
        ([(3, "bot"), (1, "bot"), (2, "clarify")], True),  # the latest bot turn counts
        ([(3, "human"), (1, "human"), (2, "clarify"), (4, "bot")], False),  # the latest human
    ],
)
def test_clarified_then_bot_reads_the_turn_numbers(rows, counted):
    from kefu.serving.report.conversations import ConversationStats

    for order in (rows, rows[::-1]):
        stats = ConversationStats()
        for turn, action in order:
            stats.add("s", turn, action, [])
        assert stats.clarified_then_bot() == int(counted), order


def test_csv_scored_file_gives_the_same_conversations(tmp_path, routed):
    table = pq.read_table(routed)
    csv_path = tmp_path / "routed.csv"
    as_text = [
        pa.array([";".join(v) if v is not None else None for v in column.to_pylist()])
        if pa.types.is_list(column.type)
        else column
        for column in table.columns
    ]
    pacsv.write_csv(pa.Table.from_arrays(as_text, names=table.column_names), csv_path)
    from_parquet = build_report([str(routed)], tmp_path / "a.html").conversations
    from_csv = build_report([str(csv_path)], tmp_path / "b.html").conversations
    assert from_csv == from_parquet


def test_a_file_without_sessions_has_no_conversation_view(tmp_path, routed):
    table = pq.read_table(routed)
    table = table.set_column(
        table.schema.get_field_index("session_id"),
        "session_id",
        pa.nulls(table.num_rows, pa.string()),
    )
    pq.write_table(table, tmp_path / "plain.parquet")
    build_report([str(tmp_path / "plain.parquet")], tmp_path / "plain.html")
    page = Tables((tmp_path / "plain.html").read_text(encoding="utf-8"))
    assert "actions" in page.tables and "handover-turns" not in page.tables


def test_kefu_score_sessions_feed_the_conversation_view(tmp_path, tiny_bundle):
    rows = conversations()
    random.Random(2).shuffle(rows)
    source = write_jsonl(rows, tmp_path / "chats.jsonl")
    scored = tmp_path / "scored.csv"
    job = ScoreJob(
        inputs=[str(source)],
        output=scored,
        bundle=tiny_bundle,
        chunk_size=5,
        progress=False,
        session_col="session",
        turn_col="turn",
    )
    run_local(job)
    data = build_report([str(scored)], tmp_path / "report.html")
    out = pacsv.read_csv(scored, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    human = {r["session_id"] for r in out.to_pylist() if r["action"] == "human"}
    assert data.conversations.count == len({row["session"] for row in rows}) == 12
    assert data.conversations.handed_over == len(human)


def test_a_known_hand_over_turn_wins_over_an_unknown_one_in_any_order():
    from kefu.serving.report.conversations import ConversationStats

    rows = [("s1", None, "human", ["complaint"]), ("s1", 2, "human", ["human_requested"])]
    for order in (rows, rows[::-1]):
        stats = ConversationStats()
        for row in order:
            stats.add(*row)
        assert stats.handover_turns() == {"2": 1}
        assert stats.handover_reasons() == {"human_requested": 1}


@pytest.mark.parametrize("turn", [2, None], ids=["numbered", "unnumbered"])
def test_hand_overs_sharing_a_turn_give_their_reasons_in_any_row_order(turn):
    """Two messages at one turn both routed human: neither came first, so the file's row
    order must not pick whose reasons the session is handed over for."""
    from kefu.serving.report.conversations import ConversationStats

    rows = [
        ("s1", turn, "human", ["complaint", "angry"]),
        ("s1", turn, "human", ["human_requested"]),
    ]
    if turn is not None:
        rows.append(("s1", turn + 1, "human", ["long_conversation"]))  # later: not why
    found = []
    for order in (rows, rows[::-1]):
        stats = ConversationStats()
        for row in order:
            stats.add(*row)
        found.append(stats.handover_reasons())
    expected = {"complaint": 1, "angry": 1, "human_requested": 1}
    assert found == [expected, expected]


def test_hand_over_turns_from_the_sixth_are_counted_together():
    from kefu.serving.report.conversations import ConversationStats

    stats = ConversationStats()
    for session, turn in (("a", 5), ("b", 6), ("c", 7), ("d", None), ("e", 12)):
        stats.add(session, turn, "human", ["human_requested"])
    stats.add("f", 1, "bot", [])
    assert stats.handover_turns() == {"5": 1, "6+": 3, "unknown": 1}


def test_priorities_of_another_policy_are_listed_not_dropped(tmp_path):
    table = routed_table()
    priorities = ["P4" if p == "P3" else p for p in table.column("priority").to_pylist()]
    table = table.set_column(
        table.schema.get_field_index("priority"), "priority", pa.array(priorities)
    )
    path = tmp_path / "p4.parquet"
    pq.write_table(table, path)
    build_report([str(path)], tmp_path / "r.html")
    rows = Tables((tmp_path / "r.html").read_text(encoding="utf-8")).tables["priorities"]
    assert [row[0] for row in rows[1:]] == ["P0", "P1", "P2", "P3", "P4"]  # under the header
    assert sum(int(row[2].replace(",", "")) for row in rows[1:]) == len(ROUTES)


def test_a_hand_over_at_a_turn_without_a_number_counts_as_handed_over(tmp_path):
    routes = [
        *orders("a1", "bot", "human"),
        ("b1", None, "payment", "订单支付组", "P2", "human", ["human_requested"]),
    ]
    path = tmp_path / "turnless.parquet"
    pq.write_table(routed_table(routes), path)
    build_report([str(path)], tmp_path / "turnless.html")
    html = (tmp_path / "turnless.html").read_text(encoding="utf-8")
    assert "2 conversations (3 messages): 2 handed to a person (100.0%)" in html
    assert "have no session id" not in html  # every message has one
    assert Tables(html).tables["handover-turns"][1:] == [
        ["1", "0", "0.0%"],
        ["2", "1", "50.0%"],
        ["3", "0", "0.0%"],
        ["4", "0", "0.0%"],
        ["5", "0", "0.0%"],
        ["6+", "0", "0.0%"],
        ["unknown", "1", "50.0%"],
    ]


def test_a_single_message_without_routing_is_named_under_the_shares(tmp_path):
    routes = [*orders("a1", "bot"), (None, None, "greeting", "机器人自助", None, None, [])]
    path = tmp_path / "unrouted.parquet"
    pq.write_table(routed_table(routes), path)
    build_report([str(path)], tmp_path / "unrouted.html")
    html = (tmp_path / "unrouted.html").read_text(encoding="utf-8")
    assert "1 messages have no action (" in html and "1 messages have no priority (" in html
    assert "1 messages have no session id (" in html
