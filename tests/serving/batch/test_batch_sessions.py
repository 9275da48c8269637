"""`kefu score --session-col`: each message routed with its conversation's context, exactly as a
real `kefu serve` process routes it when the caller sends that context."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.chat_logs import write_csv, write_jsonl
from support.conversations import TEXTS, conversations
from support.paths import REPO_ROOT
from support.serving import copy_bundle, free_port

import kefu.serving.batch.session_routing as session_routing
from kefu.errors import ConfigError, DataError, OutputError
from kefu.serving.batch import ScoreJob, run_local
from kefu.serving.batch.sessions import session_key, turn_number

ROUTE = ("queue", "priority", "action", "escalate", "reasons", "candidates")


def kefu_score(inputs: list[Path], output: Path, bundle: Path, *options: str) -> str:
    command = [sys.executable, "-m", "kefu.cli.main", "score", *map(str, inputs), "-o", str(output)]
    command += ["--bundle", str(bundle), "--chunk-size", "4", "--workers", "2", "--no-progress"]
    done = subprocess.run(
        [*command, *options], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def by_id(path: Path) -> dict[str, dict]:
    return {row["msg_id"]: row for row in pq.read_table(path).to_pylist()}


def score_here(source: Path, output: Path, bundle: Path, **options):
    """`run_local` in this process on one real file, in chunks of 4 rows; its summary."""
    job = ScoreJob(
        inputs=[str(source)], output=output, bundle=bundle, chunk_size=4, progress=False, **options
    )
    return run_local(job)


def serve(bundle: Path, policy: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEFU_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "kefu.cli.main", "serve", "--bundle", str(bundle)]
        + ["--policy", str(policy), "--port", str(port), "--ort-threads", "1"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"kefu serve did not become ready:\n{log.read_text()}")


def replay(url: str, rows: list[dict]) -> dict[str, dict]:
    """Each session in turn order, one request per message, with the context a caller keeps
    from the server's own answers: turn, earlier intents (null if abstained), clarifications."""
    sessions: dict[str, list[dict]] = {}
    for row in rows:
        sessions.setdefault(row["session"], []).append(row)
    results = {}
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for turns in sessions.values():
            previous: list[str | None] = []
            clarifications = 0
            for row in sorted(turns, key=lambda r: r["turn"]):
                context = {
                    "turn": row["turn"],
                    "previous_intents": previous,
                    "clarifications": clarifications,
                }
                response = client.post(
                    "/v1/classify", json={"text": row["text"], "context": context}
                )
                assert response.status_code == 200, response.text
                result = response.json()["results"][0]
                results[row["msg_id"]] = result
                intent = result["intent"]
                previous = [*previous, None if intent["abstain"] else intent["label"]]
                clarifications += result["route"]["action"] == "clarify"
    return results


def test_server_and_batch_route_a_conversation_the_same(tmp_path, bundle, policy, chats):
    rows, inputs = chats
    output = tmp_path / "scored.parquet"
    options = ("--session-col", "session", "--turn-col", "turn", "--policy", str(policy))
    printed = kefu_score(inputs, output, bundle, *options)
    assert "conversations 12 (by 'session', turn order)" in printed
    scored = by_id(output)
    process, url = serve(bundle, policy, tmp_path / "serve.log")
    try:
        served = replay(url, rows)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert set(scored) == set(served) == {row["msg_id"] for row in rows}
    for msg_id, result in served.items():
        route = result["route"]
        expected = {name: route[name] for name in ROUTE} | {
            "candidates": [candidate["intent"] for candidate in route["candidates"]],
            "intent": result["intent"]["label"],
            "intent_abstain": result["intent"]["abstain"],
        }
        assert {name: scored[msg_id][name] for name in expected} == expected, msg_id
    session_of = {row["msg_id"]: (row["session"], row["turn"]) for row in rows}
    assert {k: (r["session_id"], r["session_turn"]) for k, r in scored.items()} == session_of
    reasons = {reason for row in scored.values() for reason in row["reasons"]}
    actions = {row["action"] for row in scored.values()}
    # the conversation rules all fired, so the comparison above covered them
    assert actions == {"bot", "clarify", "human"}, actions
    assert {"long_conversation", "repeated_intent", "clarification_failed"} <= reasons, reasons


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


def test_resume_after_a_crash_in_the_merge_gives_the_same_routes(
    tmp_path, bundle, chats, monkeypatch
):
    _, inputs = chats
    job = ScoreJob(
        inputs=[str(p) for p in inputs],
        output=tmp_path / "out.parquet",
        bundle=bundle,
        chunk_size=4,
        progress=False,
        session_col="session",
        turn_col="turn",
    )
    reference = tmp_path / "reference.parquet"
    run_local(ScoreJob(**{**job.__dict__, "output": reference}))

    def crash(*args, **kwargs):
        raise OSError("No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(session_routing, "route_bucket", crash)
        # the write error becomes one error naming the output, as for any full disk
        with pytest.raises(OutputError, match="cannot write .*out.parquet: No space left"):
            run_local(job)
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert summary.rows_this_run == 0
    assert pq.read_table(job.output).equals(pq.read_table(reference))
    assert not Path(f"{job.output}.partial").exists()


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


@pytest.mark.parametrize("output", ["out.parquet", "out.csv"])
def test_the_session_keys_kefu_carries_are_not_written(tmp_path, bundle, chats, output):
    """The session, order and turn keys (`_kefu_*`) travel with the rows to the merge: the
    output holds the input columns and the score columns only."""
    from kefu.serving.batch.scoring import SCORE_COLUMNS

    rows, _ = chats
    source = write_jsonl(rows, tmp_path / "chats.jsonl")
    score_here(source, tmp_path / output, bundle, session_col="session", time_col="sent_at")
    if output.endswith(".csv"):
        names = pacsv.read_csv(tmp_path / output).column_names
    else:
        names = pq.read_schema(tmp_path / output).names
    assert names == [*rows[0], *SCORE_COLUMNS]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"turn_col": "turn"},
            ConfigError,
            "--turn-col orders the turns of a session: pass --session-col too",
        ),
        (
            {"session_col": "session", "turn_col": "turn", "time_col": "sent_at"},
            ConfigError,
            "pass --turn-col or --time-col, not both",
        ),
        (
            {"session_col": "conversation"},
            DataError,
            "--session-col column 'conversation' is missing",
        ),
        (
            {"session_col": "session", "time_col": "when"},
            DataError,
            "--time-col column 'when' is missing",
        ),
    ],
)
def test_bad_session_options_are_named(tmp_path, tiny_bundle, chats, options, error, message):
    with pytest.raises(error, match=message):
        run_local(
            ScoreJob(
                inputs=[str(chats[1][1])],
                output=tmp_path / "o.parquet",
                bundle=tiny_bundle,
                progress=False,
                **options,
            )
        )


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


def test_route_inputs_carry_every_urgency_and_emotion_probability_for_the_same_decision(
    tiny_bundle,
):
    from kefu.serving.batch.scoring import HEAD_TOPS, Scorer
    from kefu.serving.batch.session_routing import prediction_of
    from kefu.serving.routing import high_negative_probability

    scorer = Scorer.from_bundle(tiny_bundle, variant="fp32", intra_op_threads=1)
    deployment = scorer.deployment
    texts = ["在吗", "快递三天没动了，急用！", "你们卖假货，我要投诉", "好的"]
    rows = scorer.score(texts, route_inputs=True).to_pylist()
    # fp32 and the same batch: the same floats; every label kept, as routing saw them
    online = deployment.triage(texts, top_k=deployment.top_k_for_rerouting(1))
    for (prediction, _), row in zip(online, rows, strict=True):
        for head in ("urgency", "emotion"):
            top = row[HEAD_TOPS[head]]
            assert len(top) == len(deployment.bundle.labels[head])
            assert sum(item["confidence"] for item in top) == pytest.approx(1.0, abs=1e-6)
        assert high_negative_probability(prediction_of(row), deployment.policy) == pytest.approx(
            high_negative_probability(prediction, deployment.policy), abs=1e-6
        )


def test_an_untrained_head_drives_no_session_route(tmp_path, tiny_bundle):
    """An untrained head always abstains: online it never makes a message low-confidence, even
    when the policy names it in low_confidence.heads, and a session's routes agree."""
    untrained = copy_bundle(tiny_bundle, tmp_path / "bundle", untrained_heads=["urgency"])
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  low_confidence: {heads: [intent, urgency]}\n", encoding="utf-8")
    rows = [{**row, "turn": 1, "session": row["msg_id"]} for row in conversations()]
    source = write_jsonl(rows, tmp_path / "alone.jsonl")
    outputs = {}
    for name, session_col in (("alone", None), ("sessions", "session")):
        outputs[name] = tmp_path / f"{name}.parquet"
        score_here(source, outputs[name], untrained, policy=policy, session_col=session_col)
    alone, sessions = by_id(outputs["alone"]), by_id(outputs["sessions"])
    for msg_id, row in alone.items():  # one message per session: no conversation rule fires
        assert {k: sessions[msg_id][k] for k in ROUTE} == {k: row[k] for k in ROUTE}, msg_id


def test_a_session_longer_than_a_request_carries_is_routed_with_its_latest_intents(
    tmp_path, bundle, policy, capfd
):
    """The API takes at most MAX_PREVIOUS_INTENTS earlier intents, so a caller of a longer
    conversation sends the latest ones: batch routes each message with what the server could
    be sent (and in time linear in the session's length, not quadratic)."""
    from kefu.serving.bundle.reader import read_bundle
    from kefu.serving.routing import (
        MAX_PREVIOUS_INTENTS,
        ConversationContext,
        Reason,
        conversation_reasons,
    )
    from kefu.serving.routing_policy import RoutingPolicy

    texts = [row["text"] for row in conversations()]
    count = MAX_PREVIOUS_INTENTS + 5
    rows = [
        {"msg_id": f"m{i:05d}", "session": "same", "text": texts[i % len(texts)]}
        for i in range(count)
    ]
    source = write_jsonl(rows, tmp_path / "long.jsonl")
    score_here(source, tmp_path / "alone.parquet", bundle, policy=policy)
    capfd.readouterr()
    score_here(source, tmp_path / "long.parquet", bundle, policy=policy, session_col="session")
    line = f"conversations of more than {MAX_PREVIOUS_INTENTS + 1:,} messages: 1;"
    assert line in capfd.readouterr().err
    alone = pq.read_table(tmp_path / "alone.parquet").to_pylist()
    scored = pq.read_table(tmp_path / "long.parquet").to_pylist()
    assert [row["session_turn"] for row in scored] == list(range(1, count + 1))
    routing_policy = RoutingPolicy.for_bundle(read_bundle(bundle), policy)
    previous = [None if row["intent_abstain"] else row["intent"] for row in scored]
    for index in range(MAX_PREVIOUS_INTENTS - 2, count):
        context = ConversationContext(
            index + 1,
            previous[max(0, index - MAX_PREVIOUS_INTENTS) : index],
            sum(row["action"] == "clarify" for row in scored[:index]),
        )
        plain = alone[index]["reasons"]
        added = conversation_reasons(
            scored[index]["intent"],
            Reason.LOW_CONFIDENCE.value in plain,
            context,
            routing_policy,
        )
        expected = sorted({*plain, *added}, key=[reason.value for reason in Reason].index)
        assert scored[index]["reasons"] == expected, index


def test_the_intent_window_and_the_long_count_at_their_boundary(
    tmp_path, bundle, monkeypatch, capfd
):
    """With the window cut to 3 earlier intents, each message is routed with exactly the latest
    3: three abstained turns before an unsure one fail the clarification (not with 2), and an
    intent last seen 4 messages back is no repeat (it would be with 4). Only a conversation of
    more than 4 messages (5 or more) is counted as long, and one in file order has no unreadable
    order."""
    from kefu.serving.bundle.reader import read_bundle
    from kefu.serving.routing import ConversationContext, Reason, conversation_reasons
    from kefu.serving.routing_policy import RoutingPolicy

    window = 3
    monkeypatch.setattr(session_routing, "MAX_PREVIOUS_INTENTS", window)
    policy = tmp_path / "policy.yaml"
    rules = ("complaint", "critical_urgency", "angry", "high_urgency_negative")
    policy.write_text(
        "rules:\n"
        + "".join(f"  {rule}: {{enabled: false}}\n" for rule in rules)
        + "  repeated_intent: {min_repeats: 1, ignore_intents: []}\n"
        # only the abstained turns in the window make a clarification fail
        + "  clarification_failed: {after_clarifications: 1000, "
        + f"after_abstained_turns: {window}}}\n",
        encoding="utf-8",
    )
    probe = write_jsonl(
        [{"msg_id": f"p{i}", "text": text} for i, text in enumerate(TEXTS)], tmp_path / "p.jsonl"
    )
    score_here(probe, tmp_path / "probe.parquet", bundle, policy=policy)
    abstains = {
        row["intent_abstain"]: row["text"]
        for row in pq.read_table(tmp_path / "probe.parquet").to_pylist()
    }
    unsure, sure = abstains[True], abstains[False]
    texts = {
        "four": [unsure] * (window + 1),  # the last message has every earlier intent
        "five": [unsure] * (window + 2),  # the last message has lost the first
        "unsure": [unsure] * 4 * window,
        "returns": ([sure] + [unsure] * window) * 3 + [sure],
    }
    rows = [
        {"msg_id": f"{name}{i:02d}", "session": name, "text": text}
        for name, session in texts.items()
        for i, text in enumerate(session)
    ]
    source = write_jsonl(rows, tmp_path / "chats.jsonl")
    score_here(source, tmp_path / "alone.parquet", bundle, policy=policy)
    capfd.readouterr()
    score_here(source, tmp_path / "sessions.parquet", bundle, policy=policy, session_col="session")
    err = capfd.readouterr().err
    assert f"conversations of more than {window + 1:,} messages: 3;" in err, err
    assert "no readable" not in err, err
    alone = pq.read_table(tmp_path / "alone.parquet").to_pylist()
    scored = pq.read_table(tmp_path / "sessions.parquet").to_pylist()
    routing_policy = RoutingPolicy.for_bundle(read_bundle(bundle), policy)
    order = [reason.value for reason in Reason]

    def added(row: dict, index: int, previous: list, latest: int) -> list[Reason]:
        context = ConversationContext(index + 1, previous[max(0, index - latest) : index], 0)
        low = Reason.LOW_CONFIDENCE.value in alone[row["index"]]["reasons"]
        return conversation_reasons(row["intent"], low, context, routing_policy)

    start, narrower, wider = 0, 0, 0
    for session in texts.values():
        turns = [
            {**row, "index": start + i}
            for i, row in enumerate(scored[start : start + len(session)])
        ]
        previous = [None if row["intent_abstain"] else row["intent"] for row in turns]
        for index, row in enumerate(turns):
            expected = added(row, index, previous, window)
            plain = alone[row["index"]]["reasons"]
            assert row["reasons"] == sorted({*plain, *expected}, key=order.index), row["msg_id"]
            narrower += expected != added(row, index, previous, window - 1)
            wider += expected != added(row, index, previous, window + 1)
        start += len(session)
    assert narrower and wider, "the window's size changed no route"
