"""`kefu score --session-col`: each message routed with its conversation's context, exactly as a
real `kefu serve` process routes it when the caller sends that context; a crash in the merge
resumes to the same routes, the session keys kefu carries are not written, and bad session
options are named."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.chat_logs import write_jsonl
from support.paths import REPO_ROOT
from support.serving import free_port
from support.session_runs import ROUTE, by_id, kefu_score, score_here

import kefu.serving.batch.bucket_routing as bucket_routing
from kefu.errors import ConfigError, DataError, OutputError
from kefu.serving.batch import ScoreJob, run_local


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
        patch.setattr(bucket_routing, "route_bucket", crash)
        # the write error becomes one error naming the output, as for any full disk
        with pytest.raises(OutputError, match="cannot write .*out.parquet: No space left"):
            run_local(job)
    summary = run_local(ScoreJob(**{**job.__dict__, "resume": True}))
    assert summary.rows_this_run == 0
    assert pq.read_table(job.output).equals(pq.read_table(reference))
    assert not Path(f"{job.output}.partial").exists()


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
