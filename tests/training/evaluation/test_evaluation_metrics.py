import numpy as np
import pytest
from sklearn.metrics import f1_score

from kefu.training.evaluation.baseline import fit_head_baseline
from kefu.training.evaluation.evaluate import json_safe
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
