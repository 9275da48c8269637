"""`kefu score --session-col`: each message routed with its conversation's context, exactly as a
real `kefu serve` process routes it when the caller sends that context."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from support.chat_logs import write_csv, write_jsonl, write_parquet
from support.conversations import TEXTS, conversations, unsure_bundle
from support.paths import REPO_ROOT
from support.serving import copy_bundle, free_port

import kefu.serving.batch.session_routing as session_routing
from kefu.errors import ConfigError, DataError, KefuError, OutputError
from kefu.serving.batch import ScoreJob, run_local
from kefu.serving.batch.sessions import session_key, turn_number

ROUTE = ("queue", "priority", "action", "escalate", "reasons", "candidates")


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory):
    return unsure_bundle(tiny_bundle, tmp_path_factory.mktemp("unsure") / "bundle")


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """The content rules that read urgency and emotion off: on a random-init model they fire on
    nearly every message and would hide the conversation rules under test."""
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    rules = ("complaint", "critical_urgency", "angry", "high_urgency_negative")
    path.write_text(
        "rules:\n" + "".join(f"  {rule}: {{enabled: false}}\n" for rule in rules), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def chats(tmp_path_factory):
    """The conversations shuffled (sessions interleaved, turns out of order) over two files."""
    rows = conversations()
    random.Random(5).shuffle(rows)
    folder = tmp_path_factory.mktemp("chats")
    half = len(rows) // 2
    csv_rows = [{**row, "turn": str(row["turn"])} for row in rows[:half]]
    return rows, [
        write_csv(csv_rows, folder / "a.csv"),
        write_jsonl(rows[half:], folder / "b.jsonl"),
    ]


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
    from kefu.serving.bundle import read_bundle
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
    from kefu.serving.bundle import read_bundle
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


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for this module's Ray runs (each would otherwise start its own,
    seconds each); `run_ray` joins it and leaves it running."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from kefu.serving.batch.ray_cluster import quiet_console, start_ray

    with quiet_console():
        started = start_ray(workers=2)
    yield
    if started:
        ray.shutdown()


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


@pytest.fixture(scope="module")
def many_chats(tmp_path_factory):
    """60 conversations shuffled into one file, with rows routed alone (no session id) and
    rows placed last (no readable turn) among them."""
    rows = conversations(sessions=60, seed=11)
    random.Random(7).shuffle(rows)
    for index in (0, 1):
        rows[index]["session"] = ""
    for index in (2, 3):
        rows[index]["turn"] = "?"
    return write_jsonl(rows, tmp_path_factory.mktemp("many") / "chats.jsonl")


def session_job(source: Path, output: Path, **options) -> ScoreJob:
    """A job over `source` with sessions and turns, in chunks of 4 rows."""
    return ScoreJob(
        inputs=[str(source)],
        output=output,
        chunk_size=4,
        progress=False,
        id_col="msg_id",
        session_col="session",
        turn_col="turn",
        **options,
    )


def routed_by(engine: str, source: Path, output: Path, **options) -> tuple[pa.Table, str]:
    """The output table and the printed lines of one run of `engine`."""
    from kefu.serving.batch.ray_engine import run_ray

    job = session_job(source, output, **options)
    console = Console(file=io.StringIO(), width=200)
    (run_local if engine == "local" else run_ray)(job, console=console)
    assert not Path(f"{output}.partial").exists()
    return pq.read_table(output), console.file.getvalue()


@pytest.mark.parametrize("engine", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_buckets_routed_at_once_give_the_output_of_one_bucket_routed_here(
    tmp_path, bundle, policy, many_chats, monkeypatch, request, engine
):
    """Many buckets, routed by two worker processes (local) or as Ray tasks two at a time: the
    same table, row for row, and the same summary as one bucket routed in this process."""
    from kefu.serving.batch import local_engine, ray_engine

    if engine == "ray":
        request.getfixturevalue("ray_instance")
    reference, printed = routed_by(
        "local", many_chats, tmp_path / "serial.parquet", bundle=bundle, policy=policy
    )
    assert "conversations 60 " in printed and "2 rows without a session id" in printed, printed
    assert "2 rows with no readable 'turn'" in printed, printed
    buckets: list[int] = []
    route = session_routing.SessionRouter._route

    def counted(self, count):
        buckets.append(count)
        return route(self, count)

    monkeypatch.setattr(session_routing.SessionRouter, "_route", counted)
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    spawned: list[int] = []
    spawn = local_engine.RoutingPool._spawn
    monkeypatch.setattr(
        local_engine.RoutingPool,
        "_spawn",
        lambda self, workers: spawned.append(workers) or spawn(self, workers),
    )
    monkeypatch.setattr(ray_engine, "route_serially", None)  # Ray routes in tasks, never here
    table, printed_now = routed_by(
        engine, many_chats, tmp_path / "parallel.parquet", bundle=bundle, policy=policy, workers=2
    )
    assert buckets[0] >= 30 and buckets[0] % 2 == 0, buckets  # a multiple of the workers
    assert spawned == ([2] if engine == "local" else [])
    assert table.equals(reference)  # schema, row order, scores, routes, sessions and turns
    assert printed_now == printed


def test_buckets_are_at_most_bucket_rows_and_a_multiple_of_the_workers_once_worth_it(
    monkeypatch,
):
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 50_000)
    monkeypatch.setattr(session_routing, "MIN_SPLIT_ROWS", 20_000)
    count = session_routing.bucket_count
    assert [count(0), count(1), count(50_000), count(50_001)] == [1, 1, 1, 2]
    assert count(39_999, workers=2) == 1  # too few rows to pay for a second process
    assert count(40_000, workers=2) == 2  # two halves, routed at once
    assert count(60_000, workers=4) == 3  # three buckets worth their own process
    assert count(120_000, workers=2) == 4  # not 3: the two workers finish together
    assert count(10_000_000, workers=16) == 208


class _DiesInTheWorker(session_routing.BucketTask):
    """A bucket whose worker process dies as it takes the bucket, as one the OOM killer ends."""

    def __reduce__(self):
        return os._exit, (9,)


class _FailsInTheWorker(session_routing.BucketTask):
    """A bucket whose routing raises in the worker (no policy to route with)."""

    def __reduce__(self):
        return session_routing.BucketTask, (self.keys, self.decided, self.spec, None)


class _CannotWriteInTheWorker(session_routing.BucketTask):
    """A bucket whose decisions cannot be written (a folder that is not there, as a full disk)."""

    def __reduce__(self):
        decided = str(Path(self.decided).parent / "gone" / "decided.parquet")
        return session_routing.BucketTask, (self.keys, decided, self.spec, self.policy)


def routed_as(kind: type) -> Callable:
    """`SessionRouter._tasks` giving tasks of `kind`."""
    tasks = session_routing.SessionRouter._tasks
    return lambda self, buckets: [kind(**vars(task)) for task in tasks(self, buckets)]


@pytest.mark.parametrize(
    ("task", "error"),
    [
        (
            _DiesInTheWorker,
            "a session routing worker process died (out of memory or killed?); committed chunks "
            "are kept: rerun with --resume, with fewer --workers",
        ),
        (
            _FailsInTheWorker,
            "session routing failed in a worker process: TypeError: policy must be a RoutingPolicy",
        ),
        (  # as when the main process routes: the output named, and what to do
            _CannotWriteInTheWorker,
            "cannot write {output}: No such file or directory; fix the cause, then rerun the same "
            "command with --resume",
        ),
    ],
)
def test_a_routing_worker_that_dies_or_fails_is_one_error_and_resume_finishes(
    tmp_path, bundle, policy, many_chats, monkeypatch, task, error
):
    reference, _ = routed_by(
        "local", many_chats, tmp_path / "serial.parquet", bundle=bundle, policy=policy
    )
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    with monkeypatch.context() as patch:
        patch.setattr(session_routing.SessionRouter, "_tasks", routed_as(task))
        with pytest.raises(KefuError) as raised:
            run_local(job)
    message = str(raised.value)
    assert message.startswith(error.format(output=output)) and "\n" not in message, message
    assert not output.exists() and Path(f"{output}.partial", "state.json").exists()
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert summary.rows_this_run == 0  # only the routing and the merge ran again
    assert pq.read_table(output).equals(reference)


def test_ctrl_c_while_buckets_are_routed_stops_the_workers_and_resume_finishes(
    tmp_path, bundle, policy, many_chats, monkeypatch
):
    import multiprocessing

    from kefu.serving.batch import local_engine

    reference, _ = routed_by(
        "local", many_chats, tmp_path / "serial.parquet", bundle=bundle, policy=policy
    )
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    checked = local_engine.RoutingPool._checked

    def interrupted(self, future):
        checked(self, future)
        raise KeyboardInterrupt  # after the first bucket, with the others being routed

    with monkeypatch.context() as patch:
        patch.setattr(local_engine.RoutingPool, "_checked", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_local(job)
    assert multiprocessing.active_children() == []  # the routing workers were stopped
    assert not output.exists() and Path(f"{output}.partial", "state.json").exists()
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert summary.rows_this_run == 0
    assert pq.read_table(output).equals(reference)


@pytest.mark.ray
@pytest.mark.parametrize(
    ("task", "error"),
    [
        # Ray retries a task whose worker died, then gives up
        (_DiesInTheWorker, "the Ray run failed: WorkerCrashedError: The worker died"),
        (_FailsInTheWorker, "the Ray run failed: TypeError: policy must be a RoutingPolicy"),
        (
            _CannotWriteInTheWorker,
            "cannot write {output}: No such file or directory; fix the cause, then rerun the same "
            "command",
        ),
    ],
)
def test_a_ray_routing_task_that_dies_or_fails_is_one_error(
    tmp_path, bundle, policy, many_chats, monkeypatch, ray_instance, task, error
):
    from kefu.serving.batch.ray_engine import run_ray

    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    monkeypatch.setattr(session_routing.SessionRouter, "_tasks", routed_as(task))
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    with pytest.raises(KefuError) as raised:
        run_ray(job, console=Console(file=io.StringIO()))
    message = str(raised.value)
    assert message.startswith(error.format(output=output)) and "\n" not in message, message
    assert not output.exists() and not Path(f"{output}.partial").exists()


@pytest.mark.ray
def test_ctrl_c_while_ray_routes_cancels_the_tasks_out_and_removes_the_staging(
    tmp_path, bundle, policy, many_chats, monkeypatch, ray_instance
):
    import ray

    from kefu.serving.batch import ray_engine
    from kefu.serving.batch.ray_engine import run_ray

    cancelled: list[object] = []

    class Interrupting:
        """`ray` as the engine sees it, with Ctrl-C pressed during the second wait for a
        routing task."""

        waits = 0

        def __getattr__(self, name: str):
            return getattr(ray, name)

        def wait(self, refs, **options):
            self.waits += 1
            if self.waits == 2:
                raise KeyboardInterrupt
            return ray.wait(refs, **options)

        def cancel(self, ref, **options):
            cancelled.append(ref)
            return ray.cancel(ref, **options)

    monkeypatch.setattr(session_routing, "BUCKET_ROWS", 5)
    monkeypatch.setattr(ray_engine, "ray", Interrupting())
    output = tmp_path / "out.parquet"
    job = session_job(many_chats, output, bundle=bundle, policy=policy, workers=2)
    with pytest.raises(KeyboardInterrupt):
        run_ray(job, console=Console(file=io.StringIO()))
    assert len(cancelled) == 2  # the two tasks out when Ctrl-C came
    assert not output.exists() and not Path(f"{output}.partial").exists()
