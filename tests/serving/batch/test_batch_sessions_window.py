"""`kefu score --session-col`: what a session's route is made of. Every urgency and emotion
probability travels to the routing step, an untrained head drives no route, and each message is
routed with the latest MAX_PREVIOUS_INTENTS earlier intents, as the API can be sent them."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from support.chat_logs import write_jsonl
from support.conversations import TEXTS, content_rules_off, conversations
from support.serving import copy_bundle
from support.session_runs import ROUTE, by_id, score_here

import kefu.serving.batch.bucket_routing as bucket_routing


def test_route_inputs_carry_every_urgency_and_emotion_probability_for_the_same_decision(
    tiny_bundle,
):
    from kefu.serving.batch.bucket_routing import prediction_of
    from kefu.serving.batch.scoring import HEAD_TOPS, Scorer
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
    monkeypatch.setattr(bucket_routing, "MAX_PREVIOUS_INTENTS", window)
    policy = content_rules_off(
        tmp_path / "policy.yaml",
        "  repeated_intent: {min_repeats: 1, ignore_intents: []}\n"
        # only the abstained turns in the window make a clarification fail
        + "  clarification_failed: {after_clarifications: 1000, "
        + f"after_abstained_turns: {window}}}\n",
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
