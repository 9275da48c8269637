"""The politeness block: how many labels a greeting or a thanks changes, where none may."""

import json

import numpy as np
import pytest
from support.evaluation import EVAL_ROWS, run_cli

from kefu.serving.classifier import Classifier
from kefu.serving.taxonomy import HEADS
from kefu.training.evaluation.politeness import CLOSERS, OPENERS, wrappable


def test_only_messages_a_wrapper_leaves_alone_are_wrapped():
    texts = [
        "退款怎么还没到账",
        "你们就是骗子",
        "好的",
        "[数字x]",
        "花呗额度怎么提升",
        "怎么还没发货",
    ]
    read = {
        "intent": ["refund_return", "complaint", "greeting", "other", "other", "urge_shipment"],
        "urgency": ["high", "high", "low", "low", "low", "medium"],
        "emotion": ["neutral", "angry", "neutral", "neutral", "neutral", "dissatisfied"],
    }
    openers, closers = wrappable(texts, read)
    # no greeting before an insult, none around a bare placeholder (你好 [数字x] is a greeting)
    assert openers == [0, 2, 4, 5]
    # thanks only after a calm message that is not itself a greeting (好的 谢谢 is thanks)
    assert closers == [0, 4]


@pytest.fixture(scope="module")
def evaluated(tiny_bundle, evaluation_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("politeness-out")
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"seed={evaluation_data / 'test.jsonl'}", "-o", out,
        "--no-public-dev", "--threads", 1, "--min-support", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def test_the_block_counts_the_labels_the_served_model_changes(evaluated, tiny_bundle):
    out, metrics = evaluated
    classifier = Classifier.from_bundle(tiny_bundle, variant="fp32", intra_op_threads=1)
    texts = [row[0] for row in EVAL_ROWS]
    before = classifier.predict(texts)
    read = {head: [p.heads[head].label for p in before] for head in HEADS}
    openers, closers = wrappable(texts, read)
    wrapped = {
        "opener": (openers, [OPENERS[k % len(OPENERS)] + texts[i] for k, i in enumerate(openers)]),
        "closer": (
            closers,
            [
                texts[i].rstrip("。！？!?~，,.") + CLOSERS[k % len(CLOSERS)]
                for k, i in enumerate(closers)
            ],
        ),
    }
    for kind, (rows, changed_texts) in wrapped.items():
        block = metrics["politeness"][kind]
        assert block["n"] == len(rows) > 0
        after = classifier.predict(changed_texts)
        for head in HEADS:
            pairs = zip(after, rows, strict=True)
            moved = [a.heads[head].label != before[i].heads[head].label for a, i in pairs]
            assert block["changed"][head] == pytest.approx(np.mean(moved)), (kind, head)
            answered = [
                m for m, i in zip(moved, rows, strict=True) if not before[i].heads[head].abstain
            ]
            assert block["changed_answered"][head] == pytest.approx(np.mean(answered)), (kind, head)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert (
        f"你好/在吗/请问 before {metrics['politeness']['opener']['n']:,} messages: intent" in report
    )
