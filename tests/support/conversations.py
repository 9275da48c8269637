"""Conversational chat logs for the session tests (helpers only, no tests here).

`conversations()` gives rows of several sessions (session id, customer turn, time, text), some
texts repeated within a session, one session with a gap in its turn numbers; `unsure_bundle`
re-seals a bundle with an intent threshold that makes about half the messages abstain, so
clarify, clarify -> human and repeated intents all occur on a random-init model;
`content_rules_off` writes a policy that leaves the conversation rules to decide.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.schema import HeadCalibration
from kefu.serving.bundle.writer import write_bundle
from kefu.serving.classifier import Classifier
from kefu.serving.taxonomy import load_taxonomy

TEXTS = [
    "我的快递三天没动了",
    "退款怎么还没到账！！",
    "在吗",
    "发票开了没",
    "衣服尺码偏小能换大一号吗",
    "优惠券怎么用不了",
    "账号被冻结了怎么办",
    "订单[订单x]什么时候发货",
    "转人工",
    "好的谢谢",
]


def conversations(sessions: int = 12, seed: int = 3) -> list[dict[str, Any]]:
    """Rows in conversation order; callers shuffle them. Turn numbers start at 1 (session
    s003 skips turn 3, as a log holding only some turns would)."""
    rng = random.Random(seed)
    rows = []
    for s in range(sessions):
        turns = rng.randint(1, 6)
        numbers = [t for t in range(1, turns + 2) if not (s == 3 and t == 3)][:turns]
        texts = [rng.choice(TEXTS) for _ in numbers]
        if turns >= 3:
            texts[-1] = texts[0]  # the customer says it again
        for number, text in zip(numbers, texts, strict=True):
            rows.append(
                {
                    "msg_id": f"s{s:03d}-t{number}",
                    "session": f"s{s:03d}",
                    "turn": number,
                    "sent_at": f"2024-03-{1 + s % 9:02d} 10:{number:02d}:{s:02d}",
                    "text": text,
                }
            )
    return rows


# the rules that read urgency and emotion: on a random-init model they fire on nearly every
# message and would hide the conversation rules under test
CONTENT_RULES = ("complaint", "critical_urgency", "angry", "high_urgency_negative")


def content_rules_off(path: Path, more_rules: str = "") -> Path:
    """A policy file at `path` with `CONTENT_RULES` off; `more_rules`: further lines under
    `rules:`, indented two spaces."""
    rules = "".join(f"  {rule}: {{enabled: false}}\n" for rule in CONTENT_RULES)
    path.write_text("rules:\n" + rules + more_rules, encoding="utf-8")
    return path


def unsure_bundle(source: Path, target: Path) -> Path:
    """`source` re-sealed with the intent threshold at the median top-intent confidence."""
    bundle = read_bundle(source)
    classifier = Classifier(bundle, intra_op_threads=1)
    confidences = [p.intent.confidence for p in classifier.predict(TEXTS, entities=False)]
    calibration = dict(bundle.calibration)
    calibration["intent"] = replace(
        HeadCalibration(), threshold=statistics.median(confidences) + 1e-9
    )
    manifest = replace(bundle.manifest, model_version="tiny-unsure")
    write_bundle(
        target,
        manifest=manifest,
        onnx_fp32=bundle.model_path("fp32"),
        onnx_int8=bundle.model_path("int8"),
        tokenizer_json=bundle.tokenizer_path,
        taxonomy=load_taxonomy(),
        calibration=calibration,
    )
    return target
