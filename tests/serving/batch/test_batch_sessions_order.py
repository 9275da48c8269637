"""`kefu score --session-col`: which rows are one conversation and in what order, whatever the
file holds: turns as floats, times as Excel or epoch text, ordering by time over many buckets,
session ids as floats in one file and text in another, rows without a session or a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.chat_logs import write_csv, write_jsonl
from support.session_runs import ROUTE, by_id, kefu_score, score_here

import kefu.serving.batch.session_routing as session_routing
from kefu.serving.batch import ScoreJob, run_local
from kefu.serving.batch.sessions import session_key, turn_number


def test_time_order_small_buckets_and_unplaceable_rows(
    tmp_path, bundle, policy, chats, monkeypatch
):
    """Ordering by time gives the turn-ordered routes (turns renumbered 1..n); many buckets give
    what one gives; a row without a session is routed alone, one without a time goes last."""
    rows, inputs = chats
    base = dict(
        bundle=bundle,
        id_col="msg_id",
        chunk_size=4,
        progress=False,
        session_col="session",
        policy=policy,
    )
    run_local(
        ScoreJob(
            inputs=[str(p) for p in inputs],
            output=tmp_path / "turn.parquet",
            turn_col="turn",
            **base,
        )
    )
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)  # several buckets, several files
    timed = [{**row, "turn": None} for row in rows]
    changed = {timed[0]["session"], timed[1]["session"]}
    timed[0]["session"], timed[1]["sent_at"] = "", "not a time"
    source = write_jsonl(timed, tmp_path / "timed.jsonl")
    run_local(
        ScoreJob(inputs=[str(source)], output=tmp_path / "time.parquet", time_col="sent_at", **base)
    )
    by_turn, by_time = by_id(tmp_path / "turn.parquet"), by_id(tmp_path / "time.parquet")
    alone, late = timed[0]["msg_id"], timed[1]["msg_id"]
    assert (by_time[alone]["session_id"], by_time[alone]["session_turn"]) == (None, None)
    late_session = [r for r in rows if r["session"] == rows[1]["session"] and r["msg_id"] != alone]
    assert by_time[late]["session_turn"] == len(late_session)  # placed after the others
    checked = 0
    for row in rows:
        if row["session"] in changed or row["session"] == "s003":  # s003 has a turn gap
            continue
        mine, theirs = by_time[row["msg_id"]], by_turn[row["msg_id"]]
        assert {k: mine[k] for k in ROUTE} == {k: theirs[k] for k in ROUTE}, row["msg_id"]
        assert mine["session_turn"] == row["turn"]
        checked += 1
    assert checked > 20


def test_turns_written_as_floats_route_as_whole_numbers(tmp_path, bundle, policy, chats):
    """pandas writes an integer column with a missing cell as floats, so a CSV of turns holds
    "1.0", "2.0": the same turns as "1", "2", not unplaceable rows with no turn number."""
    rows, _ = chats
    outputs = {}
    for name, turn in (("whole", str), ("floats", lambda t: f"{t}.0")):
        source = write_csv(
            [{**row, "turn": turn(row["turn"])} for row in rows], tmp_path / f"{name}.csv"
        )
        output = tmp_path / f"{name}.parquet"
        options = dict(session_col="session", turn_col="turn", policy=policy)
        summary = score_here(source, output, bundle, **options)
        assert not any("no readable" in line for line in summary.lines()), summary.lines()
        outputs[name] = by_id(output)
    for msg_id, row in outputs["whole"].items():
        mine = outputs["floats"][msg_id]
        assert {k: mine[k] for k in (*ROUTE, "session_turn")} == {
            k: row[k] for k in (*ROUTE, "session_turn")
        }, msg_id
    assert {row["session_turn"] for row in outputs["floats"].values()} >= {1, 2, 3, 4}


def test_spreadsheet_and_epoch_text_times_order_every_turn(tmp_path, bundle, chats):
    """Excel on Chinese Windows exports 2024/3/1 9:58 (no leading zeros) and a Python log
    writes epoch seconds with a fraction: every such time orders its turn. Unpadded, a session
    from 9:58 to 10:01 read only its 10:xx rows and put them first."""
    rows, _ = chats

    def when(row: dict) -> str:
        minutes = 9 * 60 + 57 + row["turn"]  # 9:58, 9:59, 10:00, ...
        day = 1 + int(row["session"][1:]) % 9
        if int(row["session"][1:]) % 2:
            moment = datetime(2024, 3, day, minutes // 60, minutes % 60, tzinfo=UTC)
            return f"{moment.timestamp():.3f}"
        return f"2024/3/{day} {minutes // 60}:{minutes % 60:02d}"

    source = write_csv([{**row, "sent_at": when(row)} for row in rows], tmp_path / "excel.csv")
    summary = score_here(
        source, tmp_path / "o.parquet", bundle, session_col="session", time_col="sent_at"
    )
    assert not any("no readable" in line for line in summary.lines()), summary.lines()
    scored = by_id(tmp_path / "o.parquet")
    for row in rows:
        if row["session"] != "s003":  # turn 3 missing: its later turns are one place earlier
            assert scored[row["msg_id"]]["session_turn"] == row["turn"], row["msg_id"]


def test_a_session_in_a_csv_and_a_float_id_column_is_one_conversation(
    tmp_path, bundle, policy, chats
):
    """One log exported twice: a CSV with the id "1003" and a Parquet file where pandas stored
    the id column (it had a missing cell) as floats, 1003.0: the session's turns in the two
    files are still one conversation."""
    rows, _ = chats
    numbered = [{**row, "session": str(1000 + int(row["session"][1:]))} for row in rows]
    half = len(numbered) // 2
    together = write_csv(numbered, tmp_path / "all.csv")
    first = write_csv(numbered[:half], tmp_path / "first.csv")
    later = pa.Table.from_pylist(numbered[half:]).set_column(
        1, "session", pa.array([float(row["session"]) for row in numbered[half:]], pa.float64())
    )
    second = tmp_path / "second.parquet"
    pq.write_table(later, second)
    options = ("--session-col", "session", "--turn-col", "turn", "--policy", str(policy))
    kefu_score([together], tmp_path / "one.parquet", bundle, *options)
    printed = kefu_score([first, second], tmp_path / "two.parquet", bundle, *options)
    assert "conversations 12 " in printed, printed
    one, two = by_id(tmp_path / "one.parquet"), by_id(tmp_path / "two.parquet")
    for msg_id, row in one.items():
        names = (*ROUTE, "session_id", "session_turn")
        assert {k: two[msg_id][k] for k in names} == {k: row[k] for k in names}, msg_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (3.0, 3),
        (" 3 ", 3),
        ("3.0", 3),  # a float column written as text
        ("3.", 3),
        ("3.5", None),
        ("3.0e0", None),
        ("-3.0", None),
        (0, None),
        ("", None),
        (None, None),
        (True, None),
        ("①", None),  # a digit to str.isdigit, not to int
        ("²", None),
        ("99999999999999999999", None),  # beyond any conversation, and beyond int64
        (1e19, None),
        (1_000_000, 1_000_000),
    ],
)
def test_turn_numbers(value, expected):
    assert turn_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"),
        (" abc ", "abc"),
        (42, "42"),
        (42.0, "42"),  # an id column with a missing cell, stored as floats
        (42.5, "42.5"),
        ("42.0", "42.0"),  # text is kept as written
        (1e20, "1e+20"),  # beyond 2**53 a float holds no exact id: no digits are made up
        (b" abc ", "abc"),  # a binary Parquet column
        ("", None),
        (None, None),
        (float("nan"), None),  # a missing cell of a float id column: no session, not "nan"
    ],
)
def test_session_keys(value, expected):
    assert session_key(value) == expected
