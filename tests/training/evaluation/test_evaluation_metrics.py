import inspect

import numpy as np
import pytest
from sklearn.metrics import f1_score

from kefu.cli.evaluate import command as evaluate_command
from kefu.training.evaluation.baseline import fit_head_baseline
from kefu.training.evaluation.evaluate import json_safe
from kefu.training.evaluation.head_metrics import MIN_SUPPORT
from kefu.training.evaluation.metrics import confusion_matrix, head_scores
from kefu.training.evaluation.report import render_report
from kefu.training.evaluation.tables import points

LABELS = ("a", "b", "c")


def test_hand_computed_confusion_and_macro_f1():
    # gold a a b b c, predicted a b b b a:
    # a: P 1/2 R 1/2 F1 .5; b: P 2/3 R 1 F1 .8; c: P 0 (never predicted) R 0 F1 0
    scores = head_scores([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], LABELS)
    assert scores.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert scores.accuracy == pytest.approx(3 / 5)
    assert scores.per_class["a"].as_dict() == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "support": 2,
    }
    assert scores.per_class["b"].precision == pytest.approx(2 / 3)
    assert scores.per_class["b"].f1 == pytest.approx(0.8)
    assert scores.per_class["c"].as_dict() == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
    }
    assert scores.macro_f1 == pytest.approx(1.3 / 3)


def test_labels_absent_from_gold_and_predictions_do_not_count_in_macro_f1():
    gold, predicted = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    scores = head_scores(gold, predicted, (*LABELS, "unused"))
    assert scores.macro_f1 == pytest.approx(1.3 / 3)
    assert scores.per_class["unused"].support == 0
    assert scores.macro_f1 == pytest.approx(f1_score(gold, predicted, average="macro"))


def test_macro_f1_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    gold, predicted = rng.integers(0, 6, 300), rng.integers(0, 5, 300)
    scores = head_scores(gold, predicted, tuple("abcdefg"))
    assert scores.macro_f1 == pytest.approx(f1_score(gold, predicted, average="macro"))
    assert scores.accuracy == pytest.approx(float((gold == predicted).mean()))
    assert sum(s.support for s in scores.per_class.values()) == 300


def test_confusion_matrix_counts_repeated_cells():
    assert confusion_matrix([1, 1, 1], [0, 0, 2], 3).tolist() == [[0, 0, 0], [2, 0, 1], [0, 0, 0]]


def test_baseline_learns_separable_characters_and_skips_unlabelled_rows():
    texts = ["退款退款", "退款了吗", "物流呢", "快递物流", "人工"]
    labels = ["refund_return", "refund_return", "logistics_status", "logistics_status", None]
    baseline = fit_head_baseline("intent", texts, labels)
    assert baseline.n_train == 4
    assert baseline.predict(["我要退款", "物流到哪了"]) == ["refund_return", "logistics_status"]


def test_baseline_reads_text_as_the_model_beside_it():
    """Fitted at version 3, 退欵 reads as 退款; at version 2 the variant is a character of its
    own, as the model of that version read it."""
    texts = ["退款", "款项", "物流", "流程", "流水"]
    labels = ["refund_return"] * 2 + ["logistics_status"] * 3
    newer = fit_head_baseline("intent", texts, labels, normalization=3)
    older = fit_head_baseline("intent", texts, labels, normalization=2)
    assert newer.predict(["欵欵"]) == ["refund_return"]  # 款
    assert older.predict(["欵欵"]) == ["logistics_status"]  # nothing known: the larger class


def test_baseline_with_one_training_label_is_a_constant():
    baseline = fit_head_baseline("emotion", ["a", "b"], ["neutral", "neutral"])
    assert baseline.pipeline is None
    assert baseline.predict(["x", "y"]) == ["neutral", "neutral"]


def test_json_safe_turns_nan_into_null():
    assert json_safe({"x": float("nan"), "y": [np.float32(0.5), np.int64(3)]}) == {
        "x": None,
        "y": [0.5, 3],
    }


def test_points_are_signed_f1_differences():
    assert points(0.85, 0.8) == "+5.0"
    assert points(None, 0.8) == "—"


def test_report_renders_without_public_dev_or_figures(tmp_path):
    head = {
        "n": 1,
        "accuracy": 1.0,
        "macro_f1": 1.0,
        "ece": 0.0,
        "ece_uncalibrated": 0.1,
        "abstain_rate": 0.0,
        "answered_accuracy": 1.0,
        "per_class": {"a": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}},
    }
    metrics = {
        "model": {h: head for h in ("intent", "urgency", "emotion")},
        "baseline": {
            h: {"accuracy": 0.5, "macro_f1": 0.5} for h in ("intent", "urgency", "emotion")
        },
        "int8": {h: {"macro_f1": None} for h in ("intent", "urgency", "emotion")},
        "n": 1,
        "bundle": {
            "model_version": "v",
            "base_model": "b",
            "default_variant": "fp32",
            "evaluated_variant": "fp32",
        },
        "data": {"file": "t.jsonl", "rejected": 0},
        "train_data": {"file": "train.jsonl", "n": 2},
        "ece_bins": 15,
    }
    text = render_report(metrics, {}, {}, tmp_path)
    assert (
        "| intent | 1 | 1.000 | 1.000 | 0.500 | +50.0 | — | — | 0.100 | 0.000 | 0.000 | 1.000 |"
        in text
    )
    assert "Public real-text" not in text


def test_macro_f1_averages_only_classes_with_enough_test_rows():
    from kefu.training.evaluation.head_metrics import supported_macro_f1
    from kefu.training.evaluation.metrics import head_scores

    labels = ("a", "b", "c")
    scores = head_scores([0] * 10 + [1] * 10 + [2], [0] * 10 + [1] * 5 + [0] * 5 + [1], labels)
    f1 = {label: s.f1 for label, s in scores.per_class.items()}
    assert supported_macro_f1(scores, 10) == pytest.approx((f1["a"] + f1["b"]) / 2)
    assert supported_macro_f1(scores, 1) == pytest.approx(scores.macro_f1)
    assert np.isnan(supported_macro_f1(scores, 11))


def test_an_empty_set_has_no_accuracy_or_macro_f1_rather_than_zero():
    empty = head_scores([], [], LABELS)
    assert empty.n == 0 and np.isnan(empty.accuracy) and np.isnan(empty.macro_f1)


def scored_head():
    """Eight rows of intent, the sixth unlabelled and the seventh labelled outside the bundle's
    labels, so six are scored: gold a a a b b c, predicted a a b b b c, rows 1 and 4 abstaining."""
    from kefu.training.data.loader import LabelledData, LabelledRow
    from kefu.training.evaluation.head_metrics import head_gold
    from kefu.training.evaluation.inference import HeadOutputs

    intents = ["a", "a", "a", "b", "b", None, "zzz", "c"]
    rows = [
        LabelledRow(f"r{i}", "文本", {"intent": label, "urgency": None, "emotion": None}, i + 1)
        for i, label in enumerate(intents)
    ]
    data = LabelledData("test.jsonl", rows, [])
    abstain = np.array([0, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    outputs = HeadOutputs(np.array([0, 0, 1, 1, 1, 0, 0, 2]), abstain)
    return data, head_gold(data, "intent", LABELS), outputs


def probabilities(predicted, confidence):
    """(n, 3) rows putting `confidence` on the predicted label and the rest evenly on the others."""
    probs = np.full((len(predicted), 3), (1 - confidence) / 2)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_the_model_block_scores_labelled_rows_known_to_the_bundle():
    from kefu.serving.bundle.schema import HeadCalibration
    from kefu.training.evaluation.head_metrics import head_gold, model_head, scored

    data, gold, outputs = scored_head()
    assert (gold.rows.tolist(), gold.gold.tolist(), gold.unknown) == (
        [0, 1, 2, 3, 4, 7],
        [0, 0, 0, 1, 1, 2],
        1,
    )
    untrained = head_gold(data, "intent", LABELS, trained=False)
    assert (len(untrained.rows), untrained.unknown) == (0, 0)
    probs = (probabilities(outputs.predicted, 0.9), probabilities(outputs.predicted, 0.6))
    rule = HeadCalibration(1.5, 0.4, 0.1)
    block = model_head(scored(gold, outputs.predicted, LABELS), gold, outputs, probs, rule, 2)
    # F1: a 0.8 (P 1, R 2/3), b 0.8 (P 2/3, R 1); c 1.0 on one row, not averaged at support 2
    assert block["macro_f1"] == pytest.approx(0.8)
    assert block["macro_f1_all"] == pytest.approx(2.6 / 3)
    assert (block["accuracy"], block["n"], block["unknown_labels"]) == (pytest.approx(5 / 6), 6, 1)
    # one confidence bin holding every scored row: 5 of 6 right
    assert block["ece"] == pytest.approx(0.9 - 5 / 6)
    assert block["ece_uncalibrated"] == pytest.approx(5 / 6 - 0.6)
    assert block["abstain_rate"] == pytest.approx(2 / 6)
    assert block["answered_accuracy"] == pytest.approx(3 / 4)  # rows 0, 2, 3, 7 answered
    assert (block["temperature"], block["threshold"], block["margin"]) == (1.5, 0.4, 0.1)


def test_the_int8_block_is_its_own_scores_against_the_fp32_ones():
    from kefu.training.evaluation.head_metrics import int8_head, scored
    from kefu.training.evaluation.inference import HeadOutputs

    _, gold, fp32 = scored_head()
    int8 = HeadOutputs(np.array([0, 0, 1, 1, 1, 0, 0, 0]), np.arange(8) == 7)  # row 7 now a
    calibrated = probabilities(int8.predicted, 0.9)
    block = int8_head(scored(gold, int8.predicted, LABELS), 0.8, gold, int8, fp32, calibrated, 2)
    # F1: a 2/3 (P 2/3, R 2/3), b 0.8: int8 loses 6.7 points of the fp32 model's 0.8
    assert block["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert block["macro_f1_delta_points"] == pytest.approx(100 * ((2 / 3 + 0.8) / 2 - 0.8))
    assert block["agreement_with_fp32"] == pytest.approx(7 / 8)
    assert block["abstain_rate"] == pytest.approx(1 / 6)
    assert block["ece"] == pytest.approx(0.9 - 4 / 6)


def test_the_baseline_block_averages_the_same_classes_as_the_model():
    from kefu.training.evaluation.baseline import HeadBaseline
    from kefu.training.evaluation.head_metrics import baseline_head, baseline_predictions

    data, gold, _ = scored_head()
    constant = HeadBaseline("intent", None, "a", 4, 2)
    predicted = baseline_predictions(constant, data.texts(), LABELS)
    block = baseline_head(constant, predicted, gold, LABELS, 2)
    # a: P 1/2, R 1, F1 2/3; b and c never predicted: 0
    assert block == {
        "accuracy": pytest.approx(0.5),
        "macro_f1": pytest.approx(1 / 3),
        "macro_f1_all": pytest.approx(2 / 9),
        "n_train": 4,
    }


def test_scores_per_source_count_each_sources_own_rows():
    from kefu.serving.taxonomy import HEADS
    from kefu.training.data.loader import LabelledData, LabelledRow
    from kefu.training.evaluation.head_metrics import by_source, head_gold
    from kefu.training.evaluation.inference import HeadOutputs

    sources = ["jd", "jd", "alipay", ""]  # the last row has no source: in no block
    rows = [
        LabelledRow(f"r{i}", "文本", dict.fromkeys(HEADS, label), i + 1, {"source": source})
        for i, (label, source) in enumerate(zip("abab", sources, strict=True))
    ]
    data = LabelledData("test.jsonl", rows, [])
    golds = {head: head_gold(data, head, LABELS) for head in HEADS}
    outputs = {head: HeadOutputs(np.array([0, 1, 1, 1]), np.zeros(4, dtype=bool)) for head in HEADS}
    block = by_source(data, golds, outputs, dict.fromkeys(HEADS, LABELS), 1)
    assert list(block) == ["alipay", "jd"]
    assert block["jd"]["n"] == 2 and block["jd"]["intent"] == {
        "macro_f1": 1.0,
        "accuracy": 1.0,
        "n": 2,
    }
    assert block["alipay"]["emotion"] == {"macro_f1": 0.0, "accuracy": 0.0, "n": 1}


def test_kefu_evaluate_averages_over_the_classes_the_library_does():
    """The command's --min-support default is its own literal (the CLI imports no metrics code
    to start fast): it must stay the library's, or the two would report different macro-F1."""
    option = inspect.signature(evaluate_command).parameters["min_support"].default
    assert option.default == MIN_SUPPORT == 10
