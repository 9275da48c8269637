"""Labelled rows and files the `kefu evaluate` tests share: a seed-like test set with one bad row,
a training split beside it, a real-like set with sources and sessions, fake public dev sets."""

import json
from pathlib import Path

from support.public_dev import write_fake_public_dev
from typer.testing import CliRunner

from kefu.cli.main import app

EVAL_ROWS = [
    ("我的快递三天没动了", "logistics_issue", "high", "anxious"),
    ("退款怎么还没到账！！", "refund_return", "high", "dissatisfied"),
    ("转人工", "human_agent", "medium", "neutral"),
    ("在吗", "greeting", "low", "neutral"),
    ("你们卖假货，我要打12315投诉你们", "complaint", "critical", "angry"),
    ("发票开了没", "invoice", None, "neutral"),  # no urgency label: skipped for urgency only
    ("谢谢亲，收到了很满意", "greeting", "low", "positive"),
    ("账号被盗了怎么办", "account_security", "critical", "anxious"),
    ("快递到哪了", "logistics_status", "medium", None),
    ("屏幕碎了", "quality_issue", "high", "dissatisfied"),
]
TRAIN_ROWS = [
    ("物流三天没更新", "logistics_issue", "high", "anxious"),
    ("快递丢了吧", "logistics_issue", "high", "dissatisfied"),
    ("退款还没到", "refund_return", "high", "dissatisfied"),
    ("我要退货退款", "refund_return", "medium", "neutral"),
    ("人工客服", "human_agent", "medium", "neutral"),
    ("转人工谢谢", "human_agent", "medium", "neutral"),
    ("你好", "greeting", "low", "neutral"),
    ("谢谢", "greeting", "low", "positive"),
    ("我要投诉你们", "complaint", "critical", "angry"),
    ("垃圾店铺骗子", "complaint", "high", "angry"),
    ("发票怎么开", "invoice", "medium", "neutral"),
    ("账号登不上", "account_security", "high", "anxious"),
    ("快递到哪了呢", "logistics_status", "medium", "neutral"),
    ("收到的东西坏了", "quality_issue", "high", "dissatisfied"),
]


def write_jsonl(path, rows, extra_lines=(), sources=None):
    with path.open("w", encoding="utf-8") as handle:
        for number, (text, intent, urgency, emotion) in enumerate(rows):
            record = {
                "id": f"r{number}",
                "text": text,
                "intent": intent,
                "urgency": urgency,
                "emotion": emotion,
            }
            if sources:
                record["source"] = sources[number % len(sources)]
                if record["source"] == "jd":  # chat turns: three per conversation
                    record["session"], record["turn"] = f"s{number // 6}", number % 6 // 2 + 1
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        for line in extra_lines:
            handle.write(line + "\n")
    return path


def write_evaluation_data(folder: Path) -> Path:
    """test.jsonl (+ one row with an unknown intent), train.jsonl, real/test.jsonl, public-dev/."""
    bad = json.dumps({"id": "bad", "text": "随便", "intent": "no_such_intent"}, ensure_ascii=False)
    write_jsonl(folder / "test.jsonl", EVAL_ROWS, extra_lines=[bad])
    write_jsonl(folder / "train.jsonl", TRAIN_ROWS)
    (folder / "real").mkdir()
    write_jsonl(folder / "real" / "test.jsonl", EVAL_ROWS[::-1], sources=["jd", "alipay"])
    write_fake_public_dev(folder / "public-dev")
    return folder


def run_cli(*args):
    """`kefu evaluate ARGS` through typer's runner."""
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])
