import json

import matplotlib.image
import numpy as np
import pytest
from support.evaluation import EVAL_ROWS, TRAIN_ROWS, run_cli, write_jsonl

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.classifier import Classifier
from kefu.serving.taxonomy import HEADS
from kefu.training.calibration_metrics import expected_calibration_error

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluated(tiny_bundle, evaluation_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation-out")
    manifest_before = (tiny_bundle / "manifest.json").read_text()
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"seed={evaluation_data / 'test.jsonl'}", "-o", out,
        "--data", evaluation_data / "real" / "test.jsonl", "--lead", "real",
        "--public-dev", evaluation_data / "public-dev", "--threads", 1, "--min-support", 1,
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


def test_baseline_is_fitted_on_the_training_split(evaluated, evaluation_data):
    _, metrics = evaluated
    assert metrics["train_data"] == {
        "file": str(evaluation_data / "train.jsonl"),
        "n": len(TRAIN_ROWS),
    }
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


def test_every_set_reports_bootstrap_intervals_and_the_report_says_them(evaluated):
    out, metrics = evaluated
    real, seed = metrics["real"]["uncertainty"], metrics["uncertainty"]
    assert real["unit"] == "session"  # the real file's JD turns carry sessions
    assert real["units"] < len(EVAL_ROWS) and seed["unit"] == "message"
    for head in HEADS:
        low, high = real[head]["macro_f1"]
        assert low <= metrics["real"]["model"][head]["macro_f1"] <= high
        assert len(real[head]["lead_points"]) == 2
    hand_over = metrics["real"]["escalation"]["intervals"]
    assert set(hand_over) == {"precision", "recall", "rate_ratio"}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.count("How much another draw") == 2


def test_conversation_columns_of_another_name_are_read_when_named(
    tiny_bundle, evaluation_data, tmp_path
):
    renamed = tmp_path / "test.jsonl"
    lines = (evaluation_data / "real" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    with renamed.open("w", encoding="utf-8") as handle:
        for line in lines:
            row = json.loads(line)
            if "session" in row:
                row["会话ID"], row["轮次"] = row.pop("session"), row.pop("turn")
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    common = ["--bundle", tiny_bundle, "--data", f"real={renamed}", "--threads", 1]
    common += ["--train-data", evaluation_data / "train.jsonl", "--min-support", 1]
    named = run_cli(*common, "-o", tmp_path / "a", "--session-col", "会话ID", "--turn-col", "轮次")
    assert named.exit_code == 0, named.output
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["conversations"]["turns"] == (len(EVAL_ROWS) + 1) // 2
    wrong = run_cli(*common, "-o", tmp_path / "b", "--session-col", "chat")
    assert wrong.exit_code == 2 and "no column 'chat' (--session-col)" in wrong.output


def test_the_training_files_rejects_are_counted_in_one_line_not_listed(
    tiny_bundle, evaluation_data, tmp_path
):
    train = tmp_path / "train.jsonl"
    lines = (evaluation_data / "train.jsonl").read_text(encoding="utf-8").splitlines()
    bad = {"id": "bad", "text": "在吗", "intent": "zzz_label"}
    train.write_text("\n".join([*lines, json.dumps(bad)]) + "\n", encoding="utf-8")
    done = run_cli(
        "--bundle", tiny_bundle, "--data", evaluation_data / "test.jsonl", "--threads", 1,
        "--train-data", train, "--no-public-dev", "-o", tmp_path / "out",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert (
        f"{train}: 1 rows rejected, left out of the baseline as out of training (kefu data "
        f"validate {train} lists them)"
    ) in done.output
    assert "zzz_label" not in done.output


def test_a_test_file_that_holds_the_training_rows_is_warned_of(
    tiny_bundle, evaluation_data, tmp_path
):
    """Evaluating on the training file (or a whole export the splits came from) scores memory:
    the log says so; a held-out test file shares no text with training and is not warned of."""
    train = evaluation_data / "train.jsonl"
    memorised = run_cli(
        "--bundle", tiny_bundle, "--data", f"mine={train}", "--train-data", train,
        "--threads", 1, "--no-public-dev", "-o", tmp_path / "memorised",
    )  # fmt: skip
    assert memorised.exit_code == 0, memorised.output
    assert (
        f"warning: mine: {len(TRAIN_ROWS)} of {len(TRAIN_ROWS)} rows have a text of the training "
        f"data ({train}): their scores measure memory, not reading; evaluate on held-out rows "
        "(kefu data split)"
    ) in " ".join(memorised.output.split())
    held_out = run_cli(
        "--bundle", tiny_bundle, "--data", evaluation_data / "test.jsonl", "--threads", 1,
        "--no-public-dev", "-o", tmp_path / "held-out",
    )  # fmt: skip
    assert held_out.exit_code == 0, held_out.output
    assert "memory, not reading" not in held_out.output


def test_the_training_files_rejects_name_the_validate_command_with_their_columns(
    tiny_bundle, tmp_path
):
    """A shop's files with a `content` column: the command that lists the training file's
    rejects reads it with that column, as the evaluation did (without it, it would fail)."""
    written = write_jsonl(tmp_path / "rows.jsonl", TRAIN_ROWS).read_text("utf-8")
    rows = [json.loads(line) for line in written.splitlines()]
    renamed = [{"content" if key == "text" else key: v for key, v in row.items()} for row in rows]
    train = tmp_path / "train.jsonl"
    lines = [json.dumps(row, ensure_ascii=False) for row in renamed]
    bad = {"id": "bad", "content": "在吗", "intent": "zzz_label"}
    train.write_text("\n".join([*lines, json.dumps(bad)]) + "\n", encoding="utf-8")
    done = run_cli(
        "--bundle", tiny_bundle, "--data", train, "--train-data", train, "--text-col", "content",
        "--threads", 1, "--no-public-dev", "-o", tmp_path / "out",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    command = f"kefu data validate {train} --text-col content"
    assert f"left out of the baseline as out of training ({command} lists them)" in " ".join(
        done.output.split()
    )
