"""A small scored table, as `kefu score` writes it, for the report tests."""

from __future__ import annotations

import pyarrow as pa

from kefu.serving.batch.scoring import SCORE_SCHEMA

MESSAGES = [
    ("我的快递怎么还没到", "logistics_status", "anxious", False, [], "2024-03-01 08:00:00"),
    ("我的快递怎么还没到？？", "logistics_status", "anxious", False, [], "2024-03-01 09:00:00"),
    ("我的快递怎么还没到啊", "logistics_status", "dissatisfied", False, [], "2024-03-01 10:00:00"),
    (
        "我的快递 怎么还没到 订单123456",
        "logistics_status",
        "neutral",
        False,
        [],
        "2024-03-03 10:00:00",
    ),
    ("我的快递怎么还没到", "logistics_status", "neutral", False, [], "2024-03-03 11:00:00"),
    ("我的快递怎么还没到", "logistics_status", "neutral", False, [], "2024/03/03 12:00"),
    ("发票怎么开", "invoice", "neutral", True, ["low_confidence"], "2024-03-01T12:00:00"),
    ("发票怎么开呢", "invoice", "neutral", False, [], "2024-03-03 08:00:00"),
    ("你们卖假货，我要投诉", "complaint", "angry", True, ["complaint", "angry"], "not a time"),
    ("🙂🙂", "greeting", "positive", False, [], "2024-03-03 09:00:00"),
]


def scored_table() -> pa.Table:
    rows = []
    for i, (text, intent, emotion, escalate, reasons, created_at) in enumerate(MESSAGES):
        rows.append(
            {
                "msg_id": f"m{i}",
                "text": text,
                "created_at": created_at,
                "intent": intent,
                "intent_confidence": 0.9,
                "urgency": "high" if escalate else "low",
                "urgency_confidence": 0.8,
                "emotion": emotion,
                "emotion_confidence": 0.7,
                "group": "x",
                "queue": "投诉专席" if intent == "complaint" else "售前组",
                "priority": "P1" if escalate else "P3",
                "escalate": escalate,
                "reasons": reasons,
                "model_version": "test-1",
            }
        )
    schema = pa.schema(
        [("msg_id", pa.string()), ("text", pa.string()), ("created_at", pa.string()), *SCORE_SCHEMA]
    )
    return pa.Table.from_pylist(rows, schema=schema)
