"""`kefu score --session-col --engine ray`: Ray routes conversations as the local engine does,
row for row, with the same rejects, summary and printed lines."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console
from support.chat_logs import write_csv, write_jsonl, write_parquet

import kefu.serving.batch.session_routing as session_routing
from kefu.serving.batch import ScoreJob, run_local


def both_engines(tmp_path: Path, inputs: list[Path], **options) -> dict[str, dict]:
    """Each engine's output table, rejects, summary lines and printed lines for one job."""
    from kefu.serving.batch.ray_engine import run_ray

    found = {}
    for engine in ("local", "ray"):
        output = tmp_path / f"{engine}.parquet"
        job = ScoreJob(
            inputs=[str(path) for path in inputs],
            output=output,
            chunk_size=4,
            workers=2 if engine == "ray" else 1,  # two actors; the same output with any workers
            progress=False,
            **options,
        )
        console = Console(file=io.StringIO(), width=200)
        summary = (
            run_local(job, console=console) if engine == "local" else run_ray(job, console=console)
        )
        found[engine] = {
            "table": pq.read_table(output),
            "rejects": Path(f"{output}.rejects.jsonl").read_text(encoding="utf-8"),
            "summary": (summary.lines()[:3], summary.file_rows),  # rows, lines, reasons
            "printed": console.file.getvalue(),
        }
        assert not Path(f"{output}.partial").exists()
    return found


def assert_same(found: dict[str, dict]) -> None:
    local, remote = found["local"], found["ray"]
    # schema, row order, bit-identical scores, the same routes, session ids and turns
    assert remote["table"].equals(local["table"]), (remote["table"], local["table"])
    assert remote["rejects"] == local["rejects"]
    assert remote["summary"] == local["summary"]
    assert remote["printed"] == local["printed"]


@pytest.mark.ray
def test_ray_routes_conversations_as_the_local_engine_does(
    tmp_path, bundle, policy, chats, ray_instance, monkeypatch
):
    """Sessions interleaved, turns out of order, spread over a CSV and a JSONL file and over
    chunks of 4 rows that different actors score, with rejected rows among them: Ray's output,
    rejects and summary are the local engine's, row for row."""
    rows, _ = chats
    half = len(rows) // 2
    bad = [
        {"msg_id": f"bad{i}", "session": rows[i]["session"], "turn": 9, "text": ""}
        for i in range(3)
    ]
    first = write_csv(
        [{**row, "turn": str(row["turn"])} for row in rows[:half]] + bad[:1], tmp_path / "a.csv"
    )
    second = write_jsonl(rows[half:] + bad[1:], tmp_path / "b.jsonl", extra_lines=[b"{broken"])
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 7)  # several buckets
    found = both_engines(
        tmp_path,
        [first, second],
        bundle=bundle,
        policy=policy,
        id_col="msg_id",
        session_col="session",
        turn_col="turn",
    )
    assert_same(found)
    table = found["ray"]["table"]
    assert table.num_rows == len(rows)
    assert "conversations 12 (by 'session', turn order)" in found["ray"]["printed"]
    session_of = {row["msg_id"]: (row["session"], row["turn"]) for row in rows}
    assert {
        row["msg_id"]: (row["session_id"], row["session_turn"]) for row in table.to_pylist()
    } == session_of
    # the conversation rules fired, so the comparison covered them
    reasons = {reason for row in table.column("reasons").to_pylist() for reason in row}
    assert {"long_conversation", "repeated_intent", "clarification_failed"} <= reasons, reasons


@pytest.mark.ray
@pytest.mark.parametrize(
    ("order_col", "unreadable"),
    [("turn", ["abc", "0", 3.5, None]), ("sent_at", ["not a time", "2024-13-45", [], None])],
)
def test_ray_counts_rows_without_a_session_or_an_order_as_the_local_engine_does(
    tmp_path, bundle, chats, ray_instance, order_col, unreadable
):
    """Blank, null and missing session ids and unreadable turns or times, in a CSV and in a
    JSONL file, and a session id written 1001 in one and 1001.0 in the other: routed, counted
    and printed alike by both engines."""
    rows, _ = chats
    numbered = [{**row, "session": 1000 + int(row["session"][1:])} for row in rows]
    half = len(numbered) // 2
    for index, value in zip((0, 1, half), ["", "  ", None], strict=True):
        numbered[index]["session"] = value
    del numbered[half + 1]["session"]
    for index, value in zip((2, 3, half + 2, half + 3), unreadable, strict=True):
        numbered[index][order_col] = value
    in_csv = [{**row, "session": str(row.get("session") or "")} for row in numbered[:half]]
    in_jsonl = [
        {**row, "session": float(row["session"])} if isinstance(row.get("session"), int) else row
        for row in numbered[half:]
    ]
    found = both_engines(
        tmp_path,
        [write_csv(in_csv, tmp_path / "a.csv"), write_jsonl(in_jsonl, tmp_path / "b.jsonl")],
        bundle=bundle,
        id_col="msg_id",
        session_col="session",
        **({"turn_col": "turn"} if order_col == "turn" else {"time_col": "sent_at"}),
    )
    assert_same(found)
    printed = found["ray"]["printed"]
    mode = "turn" if order_col == "turn" else "time"
    sessions = {row["session"] for row in numbered if isinstance(row.get("session"), int)}
    assert f"conversations {len(sessions)} (by 'session', {mode} order)" in printed, printed
    assert "4 rows without a session id, each routed alone" in printed, printed
    assert f"4 rows with no readable {order_col!r}, routed after" in printed, printed


@pytest.mark.ray
@pytest.mark.parametrize("kind", ["no rows", "every row rejected"])
def test_ray_and_local_agree_on_an_input_with_nothing_to_route(
    tmp_path, tiny_bundle, ray_instance, kind
):
    """No conversation to route: the same empty output (score columns only: no input row was
    scored, though a Parquet chunk of rejected rows still has typed columns), the same rejects
    and the same summary."""
    if kind == "no rows":
        source = tmp_path / "chats.csv"
        source.write_text("msg_id,session,turn,text\n", encoding="utf-8")
    else:
        rows = [{"msg_id": f"m{i}", "session": "s1", "turn": i + 1, "text": ""} for i in range(6)]
        source = write_parquet(rows, tmp_path / "chats.parquet")
    found = both_engines(
        tmp_path,
        [source],
        bundle=tiny_bundle,
        id_col="msg_id",
        session_col="session",
        turn_col="turn",
    )
    assert_same(found)
    assert found["ray"]["table"].num_rows == 0
    assert found["ray"]["printed"] == "conversations 0 (by 'session', turn order)\n"
