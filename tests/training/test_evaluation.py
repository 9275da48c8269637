import json
import shutil
from dataclasses import replace

import matplotlib.image
import numpy as np
import pytest
from support.public_dev import write_fake_public_dev
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import DataError
from kefu.serving.bundle import read_bundle, update_bundle
from kefu.serving.classifier import Classifier
from kefu.serving.taxonomy import HEADS
from kefu.training.calibration_metrics import expected_calibration_error
from kefu.training.evaluation.artifacts import resolve_train_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
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


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluation-data")
    bad = json.dumps({"id": "bad", "text": "随便", "intent": "no_such_intent"}, ensure_ascii=False)
    write_jsonl(folder / "test.jsonl", EVAL_ROWS, extra_lines=[bad])
    write_jsonl(folder / "train.jsonl", TRAIN_ROWS)
    (folder / "real").mkdir()
    write_jsonl(folder / "real" / "test.jsonl", EVAL_ROWS[::-1], sources=["jd", "alipay"])
    write_fake_public_dev(folder / "public-dev")
    return folder


def run_cli(*args):
    result = CliRunner().invoke(app, ["evaluate", *map(str, args)])
    return result


@pytest.fixture(scope="module")
def evaluated(tiny_bundle, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation-out")
    manifest_before = (tiny_bundle / "manifest.json").read_text()
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"seed={data_dir / 'test.jsonl'}", "-o", out,
        "--data", data_dir / "real" / "test.jsonl", "--lead", "real",
        "--public-dev", data_dir / "public-dev", "--threads", 1, "--min-support", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        tiny_bundle / "manifest.json"
    ).read_text() == manifest_before  # -o elsewhere: bundle untouched
    return out, json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def test_metrics_json_has_the_contract_shape(evaluated, tiny_bundle):
    _, metrics = evaluated
    labels = read_bundle(tiny_bundle).labels
    assert {"model", "baseline", "int8", "n"} <= set(metrics)
    assert metrics["n"] == len(EVAL_ROWS)
    for head in HEADS:
        model = metrics["model"][head]
        assert {"accuracy", "macro_f1", "ece", "abstain_rate", "per_class"} <= set(model)
        assert list(model["per_class"]) == list(labels[head])
        for scores in model["per_class"].values():
            assert set(scores) == {"precision", "recall", "f1", "support"}
            assert all(0.0 <= scores[key] <= 1.0 for key in ("precision", "recall", "f1"))
        for key in ("accuracy", "macro_f1", "ece", "abstain_rate"):
            assert 0.0 <= model[key] <= 1.0, (head, key)
        assert set(metrics["baseline"][head]) >= {"accuracy", "macro_f1"}
        assert 0.0 <= metrics["baseline"][head]["macro_f1"] <= 1.0
        assert 0.0 <= metrics["int8"][head]["macro_f1"] <= 1.0


def test_each_extra_test_set_gets_a_block_of_the_same_shape_with_scores_per_source(evaluated):
    _, metrics = evaluated
    assert metrics["test_sets"] == ["seed", "real"] and metrics["lead"] == "real"
    real = metrics["real"]
    assert {"model", "baseline", "int8", "n", "data", "confusion"} <= set(real)
    assert real["n"] == len(EVAL_ROWS)
    for head in HEADS:
        assert set(real["model"][head]) == set(metrics["model"][head])
    # the same rows in another order score the same: the blocks are computed alike
    assert real["model"]["intent"]["accuracy"] == metrics["model"]["intent"]["accuracy"]
    assert set(real["by_source"]) == {"jd", "alipay"}
    assert sum(part["n"] for part in real["by_source"].values()) == len(EVAL_ROWS)
    assert "by_source" not in metrics  # the first set has no source column


def test_a_test_set_with_sessions_is_also_scored_per_conversation(evaluated):
    out, metrics = evaluated
    conversations = metrics["real"]["conversations"]
    jd_rows = (len(EVAL_ROWS) + 1) // 2  # every other row of the real file is a JD turn
    assert conversations["turns"] == jd_rows
    assert conversations["conversations"] == -(-jd_rows // 3)
    assert conversations["handed_over"] <= conversations["conversations"]
    assert conversations["need_person"] >= 1  # the complaint and angry rows need a person
    assert "conversations" not in metrics  # the seed file has no sessions
    assert "Conversations: each session routed turn by turn" in (out / "report.md").read_text(
        encoding="utf-8"
    )


def test_supports_add_up_and_unlabelled_rows_are_skipped_per_head(evaluated):
    _, metrics = evaluated
    expected = {
        head: sum(row[i + 1] is not None for row in EVAL_ROWS) for i, head in enumerate(HEADS)
    }
    assert expected == {"intent": 10, "urgency": 9, "emotion": 9}
    for head in HEADS:
        supports = sum(s["support"] for s in metrics["model"][head]["per_class"].values())
        assert supports == metrics["model"][head]["n"] == expected[head]
        assert np.array(metrics["confusion"][head]["matrix"]).sum() == expected[head]
    assert metrics["model"]["urgency"]["per_class"]["critical"]["support"] == 2


def test_baseline_is_fitted_on_the_training_split(evaluated, data_dir):
    _, metrics = evaluated
    assert metrics["train_data"] == {"file": str(data_dir / "train.jsonl"), "n": len(TRAIN_ROWS)}
    assert {head: metrics["baseline"][head]["n_train"] for head in HEADS} == {
        h: len(TRAIN_ROWS) for h in HEADS
    }


def test_numbers_match_the_classifier_that_serving_runs(evaluated, tiny_bundle):
    _, metrics = evaluated
    classifier = Classifier.from_bundle(tiny_bundle, variant="fp32", intra_op_threads=1)
    texts = [row[0] for row in EVAL_ROWS]
    probs = classifier.predict_proba(texts)
    predictions = classifier.predict(texts)
    labels = classifier.bundle.labels
    for i, head in enumerate(HEADS):
        rows = [r for r, row in enumerate(EVAL_ROWS) if row[i + 1] is not None]
        gold = np.array([labels[head].index(EVAL_ROWS[r][i + 1]) for r in rows])
        accuracy = np.mean([predictions[r].heads[head].label == EVAL_ROWS[r][i + 1] for r in rows])
        assert metrics["model"][head]["accuracy"] == pytest.approx(accuracy)
        assert metrics["model"][head]["ece"] == pytest.approx(
            expected_calibration_error(probs[head][rows], gold)
        )


def test_pngs_exist_are_valid_and_the_report_shows_them(evaluated):
    out, _ = evaluated
    report = (out / "report.md").read_text(encoding="utf-8")
    for head in HEADS:
        for kind in ("confusion", "reliability"):
            png = out / f"{kind}_{head}.png"
            assert png.read_bytes()[:8] == PNG_MAGIC
            assert matplotlib.image.imread(png).ndim == 3
            assert f"]({png.name})" in report
    assert "| intent | 10 |" in report
    assert "## Public real-text dev sets" in report


def test_rejected_rows_are_written_not_lost(evaluated):
    out, metrics = evaluated
    rejects = [
        json.loads(line)
        for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rejects) == metrics["data"]["rejected"] == 1
    assert (rejects[0]["line"], rejects[0]["column"], rejects[0]["reason"]) == (
        len(EVAL_ROWS) + 1,
        "intent",
        "unknown_label",
    )
    assert "no_such_intent" in rejects[0]["detail"]
    assert metrics["n"] + metrics["data"]["rejected"] == len(EVAL_ROWS) + 1


def test_public_dev_sets_are_scored(evaluated):
    _, metrics = evaluated
    public = metrics["public_dev"]
    assert {name: result["n"] for name, result in public.items()} == {
        "jd_chat_vs_business": 5,
        "waimai": 3,
        "chnsenticorp_hotel": 3,
        "smp2020_weibo": 5,
    }
    assert public["jd_chat_vs_business"]["asks_human_rows"] == 2


def test_evaluating_into_the_bundle_updates_metrics_and_card_and_keeps_it_valid(
    tiny_bundle, data_dir, tmp_path
):
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle_dir)
    bundle = read_bundle(bundle_dir)
    # An abstain-always rule and a temperature: abstain rate 1, ECE differs before/after scaling.
    calibration = {
        head: replace(bundle.calibration[head], temperature=3.0, threshold=1.01) for head in HEADS
    }
    training = {
        "seconds_total": 750.4,
        "seconds_loop": 701.0,
        "threads": 2,
        "rows": {"train": 14, "dev": 3},
        "base_model_licence": "TEST LICENCE: non-commercial research use only",
        "calibration": {"intent": {"target_precision": 0.95, "answered_precision": 0.96}},
    }
    update_bundle(
        bundle_dir, calibration=calibration, metrics={"training": training, "custom": {"x": 1}}
    )
    for _ in range(2):  # re-evaluating an evaluated bundle must keep its seal valid
        result = run_cli(
            "--bundle",
            bundle_dir,
            "--data",
            data_dir / "test.jsonl",
            "-o",
            bundle_dir,
            "--no-public-dev",
        )
        assert result.exit_code == 0, result.output
    updated = read_bundle(bundle_dir)  # hashes verified
    report_metrics = json.loads(
        (bundle_dir / "evaluation" / "metrics.json").read_text(encoding="utf-8")
    )
    assert updated.metrics == report_metrics | {"training": training, "custom": {"x": 1}}
    assert "public_dev" not in updated.metrics
    for head in HEADS:
        assert updated.metrics["model"][head]["abstain_rate"] == 1.0
        assert (
            updated.metrics["model"][head]["ece"]
            != updated.metrics["model"][head]["ece_uncalibrated"]
        )
    card = updated.model_card_path.read_text(encoding="utf-8")
    assert card.startswith("---\n")  # Hugging Face metadata first
    assert "\n# kefu triage model tiny-0\n" in card
    for expected in (
        "| base model licence | TEST LICENCE: non-commercial research use only |",
        "| training time | 12 min 30 s in all, 11 min 41 s in the training loop, on 2 CPU threads |",
        "| dev data | `?` (3 rows) |",
        "| custom: x | 1 |",
        "weights are for non-commercial research use only",
        "[evaluation/report.md](evaluation/report.md)",
        "## Calibration and abstention",
        "| intent | 3.000 | 1.010 | 0.000 | 0.950 | 0.960 |",
        "## Intended use",
        "## Known limits",
    ):
        assert expected in card, expected


def test_update_bundle_flag_writes_the_card_when_out_is_elsewhere(tiny_bundle, data_dir, tmp_path):
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle_dir)
    result = run_cli(
        "--bundle", bundle_dir, "--data", data_dir / "test.jsonl", "-o", tmp_path / "out",
        "--public-dev", data_dir / "public-dev", "--update-bundle",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = read_bundle(bundle_dir).model_card_path.read_text(encoding="utf-8")
    assert "| jd_chat_vs_business | chitchat_vs_business | 5 |" in card
    assert "reviews and social posts" in card


def test_train_split_is_found_beside_the_data_or_asked_for(data_dir, tmp_path):
    assert resolve_train_data(None, data_dir / "test.jsonl", {}) == [
        (data_dir / "train.jsonl", 1.0)
    ]
    config = {"train_data": [str(data_dir / "train.jsonl")] * 2, "train_weights": [0.5, 2.0]}
    assert resolve_train_data(None, data_dir / "test.jsonl", config) == [
        (data_dir / "train.jsonl", 0.5),
        (data_dir / "train.jsonl", 2.0),
    ]
    lonely = tmp_path / "test.jsonl"
    lonely.write_text("", "utf-8")
    with pytest.raises(DataError, match="pass --train-data FILE"):
        resolve_train_data(None, lonely, {})


def test_missing_data_file_is_a_clear_error(tiny_bundle, tmp_path):
    result = run_cli(
        "--bundle", tiny_bundle, "--data", tmp_path / "nope.jsonl", "-o", tmp_path / "out"
    )
    assert result.exit_code == 1
    assert (
        f"kefu evaluate: file {tmp_path / 'nope.jsonl'}: input file does not exist" in result.output
    )


def test_data_labelled_for_intent_only_scores_intent_and_leaves_other_heads_empty(
    tiny_bundle, tmp_path
):
    write_jsonl(
        tmp_path / "train.jsonl", [(text, intent, None, None) for text, intent, *_ in TRAIN_ROWS]
    )
    write_jsonl(
        tmp_path / "test.jsonl", [(text, intent, None, None) for text, intent, *_ in EVAL_ROWS]
    )
    result = run_cli(
        "--bundle",
        tiny_bundle,
        "--data",
        tmp_path / "test.jsonl",
        "-o",
        tmp_path / "out",
        "--no-public-dev",
        "--min-support",
        1,
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["model"]["intent"]["n"] == len(EVAL_ROWS)
    assert metrics["model"]["urgency"]["n"] == 0
    assert metrics["model"]["urgency"]["macro_f1"] is None
    assert metrics["baseline"]["emotion"] == {
        "accuracy": None,
        "macro_f1": None,
        "macro_f1_all": None,
        "n_train": 0,
    }
    assert "public_dev" not in metrics
    assert "| urgency | 0 | — | — | — |" in (tmp_path / "out" / "report.md").read_text(
        encoding="utf-8"
    )


def test_length_sorted_batches_come_back_in_input_order(tiny_bundle):
    from kefu.serving.deployment import Deployment
    from kefu.training.evaluation.inference import calibrated_probabilities, run_deployment

    deployment = Deployment.load(tiny_bundle, threads=1)
    classifier = deployment.classifier
    texts = [row[0] for row in EVAL_ROWS] + [row[0] * 3 for row in TRAIN_ROWS]
    outputs = run_deployment(deployment, texts, with_logits=True, batch_size=4)
    expected = classifier.predict_proba(texts)
    single = [classifier.predict([text])[0] for text in texts]
    for head, probs in calibrated_probabilities(classifier, outputs).items():
        np.testing.assert_allclose(probs, expected[head], atol=1e-5)
        labels = [classifier.bundle.labels[head][i] for i in outputs[head].predicted]
        assert labels == [prediction.heads[head].label for prediction in single]


def test_every_set_has_an_escalation_block_against_the_gold_routing(evaluated, tiny_bundle):
    from kefu.serving.entities import asks_for_human
    from kefu.serving.routing import content_reasons
    from kefu.serving.routing_policy import RoutingPolicy

    _, metrics = evaluated
    policy = RoutingPolicy.for_bundle(read_bundle(tiny_bundle))
    fully_labelled = [row for row in EVAL_ROWS if all(row[1:])]
    expected_true = sum(
        bool(content_reasons(*row[1:], asks_for_human(row[0]), policy)) for row in fully_labelled
    )
    for block in (metrics, metrics["real"]):
        escalation = block["escalation"]
        assert escalation["n"] == len(fully_labelled)
        assert escalation["true_human"] == expected_true
        assert escalation["true_rate"] == pytest.approx(expected_true / len(fully_labelled))
        assert sum(escalation["actions"].values()) == pytest.approx(1.0)
        assert escalation["actions"]["human"] == pytest.approx(escalation["rate"])
        assert {"precision", "recall", "f1"} <= set(escalation)
