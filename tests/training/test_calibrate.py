import numpy as np
import pytest

from kefu.serving.classifier import softmax
from kefu.training.calibrate import (
    MIN_ANSWERED,
    calibrate_heads,
    choose_abstention,
    fit_temperature,
)
from kefu.training.calibration_metrics import (
    ECE_BINS,
    expected_calibration_error,
    reliability_bins,
)
from kefu.training.sampling import IGNORE


def overconfident(n: int, k: int, true_temperature: float, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / T): the right temperature is T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4, size=(n, k))
    probs = softmax(logits, true_temperature)
    labels = np.array([rng.choice(k, p=row) for row in probs])
    return logits, labels


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    logits, labels = overconfident(4000, 6, true_temperature=2.5)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)


def test_temperature_scaling_lowers_ece_and_keeps_every_argmax():
    logits, labels = overconfident(3000, 5, true_temperature=3.0, seed=1)
    (calibration,), (report,) = (
        part.values()
        for part in calibrate_heads({"intent": logits}, {"intent": labels}, {"intent": 0.5})
    )
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, calibration.temperature), labels)
    assert report.ece_before == pytest.approx(before)
    assert report.ece_after == pytest.approx(after)
    assert after < 0.03 < before
    scaled = softmax(logits, calibration.temperature)
    assert (scaled.argmax(axis=1) == softmax(logits).argmax(axis=1)).all()


def serving_answers(probs: np.ndarray, threshold: float, margin: float) -> np.ndarray:
    """The rule serving applies (Classifier._head_predictions): answer unless either test fails."""
    ordered = np.sort(probs, axis=1)
    return ~((ordered[:, -1] < threshold) | (ordered[:, -1] - ordered[:, -2] < margin))


def test_the_chosen_rule_reaches_the_target_on_dev_and_answers_the_most_rows():
    logits, labels = overconfident(2000, 8, true_temperature=1.0, seed=2)
    probs = softmax(logits)
    threshold, margin, precision, abstain_rate, met = choose_abstention(probs, labels, 0.95)
    answered = serving_answers(probs, threshold, margin)
    correct = probs.argmax(axis=1) == labels
    assert met
    assert precision == pytest.approx(correct[answered].mean())
    assert precision >= 0.95
    assert abstain_rate == pytest.approx(1 - answered.mean())
    assert 0 < abstain_rate < 1
    # a slightly lower threshold (same margin) would answer more rows but miss the target
    looser = serving_answers(probs, threshold - 0.02, margin)
    assert looser.sum() > answered.sum()
    assert correct[looser].mean() < 0.95 or margin > 0


def test_a_model_already_precise_enough_never_abstains():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]] * 50)
    labels = np.array([0, 1] * 50)
    assert choose_abstention(probs, labels, 0.95) == (0.0, 0.0, 1.0, 0.0, True)


def test_an_unreachable_target_keeps_the_most_precise_rule_and_says_so():
    rng = np.random.default_rng(3)
    probs = softmax(rng.normal(size=(200, 4)))
    labels = rng.integers(0, 4, size=200)  # labels unrelated to the scores
    *_, precision, abstain_rate, met = choose_abstention(probs, labels, 0.99)
    assert not met
    assert precision < 0.99
    assert abstain_rate <= 1 - MIN_ANSWERED / 200


def test_rows_without_a_label_are_left_out():
    logits, labels = overconfident(500, 4, true_temperature=2.0, seed=4)
    masked = labels.copy()
    masked[:100] = IGNORE
    _, reports = calibrate_heads({"emotion": logits}, {"emotion": masked}, {"emotion": 0.9})
    assert reports["emotion"].n == 400
    expected = fit_temperature(logits[100:], labels[100:])
    assert reports["emotion"].temperature == pytest.approx(expected)


def test_the_abstain_cap_keeps_the_clarify_rate_down_and_says_the_target_was_missed():
    logits, labels = overconfident(2000, 8, true_temperature=1.0, seed=2)
    probs = softmax(logits)
    *_, uncapped_rate, met = choose_abstention(probs, labels, 0.95)
    assert met and uncapped_rate > 0.15
    threshold, margin, precision, abstain_rate, met = choose_abstention(probs, labels, 0.95, 0.10)
    assert abstain_rate <= 0.10 and not met
    assert 1 - serving_answers(probs, threshold, margin).mean() == pytest.approx(abstain_rate)
    correct = probs.argmax(axis=1) == labels
    assert precision > correct.mean()  # the most precise rule within the cap, not answering all


def test_a_threshold_or_margin_equal_to_a_rows_score_answers_that_row_as_serving_does():
    """Repeated dev messages tie: 705 unsure rows (confidence 0.625, gap 0.5, half right) and 295
    sure ones (0.875, all right). A rule of 0.625 or of margin 0.5 still answers the unsure rows
    in serving (`confidence < threshold` abstains), so only 0.875 keeps to the sure ones."""
    unsure = [[0.625, 0.125, 0.125, 0.125]] * 705
    sure = [[0.875, 0.125, 0.0, 0.0]] * 295
    probs = np.array(unsure + sure)
    labels = np.array([row % 2 for row in range(705)] + [0] * 295)
    threshold, margin, precision, abstain_rate, met = choose_abstention(probs, labels, 0.95)
    assert (threshold, margin, precision, met) == (0.875, 0.0, 1.0, True)
    assert abstain_rate == pytest.approx(0.705)
    assert serving_answers(probs, threshold, margin).sum() == 295


def ranked_rows():
    """100 two-class rows, confidence rising with the row: the 19 most confident right, the 20th
    wrong, the rest right on even rows only (so answering more rows only loses precision)."""
    confidence = 0.501 + 0.004 * np.arange(100)
    right = np.array([row % 2 == 0 for row in range(80)] + [False] + [True] * 19)
    return np.stack([confidence, 1 - confidence], axis=1), np.where(right, 0, 1)


def test_a_rule_answers_at_least_min_answered_rows_and_reaching_the_target_exactly_counts():
    probs, labels = ranked_rows()
    assert MIN_ANSWERED == 20
    # the 20 most confident: 19 right, precision 0.95 exactly, which meets a 0.95 target
    *_, precision, abstain_rate, met = choose_abstention(probs, labels, 0.95)
    assert (precision, met) == (0.95, True) and abstain_rate == pytest.approx(0.8)
    # the 19 all right are too few to trust: a target of 1.0 is missed, not met on 19 rows
    *_, precision, abstain_rate, met = choose_abstention(probs, labels, 1.0)
    assert (precision, met) == (0.95, False) and abstain_rate == pytest.approx(0.8)


def test_a_dev_split_smaller_than_min_answered_is_judged_on_all_its_rows():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]] * 5)
    assert choose_abstention(probs, np.array([0, 1] * 5), 0.95) == (0.0, 0.0, 1.0, 0.0, True)


def test_each_heads_abstain_cap_is_applied_and_a_head_without_dev_labels_keeps_t_1():
    logits, labels = overconfident(2000, 8, true_temperature=1.0, seed=2)
    unlabelled = np.full(2000, IGNORE)
    _, reports = calibrate_heads(
        {"intent": logits, "emotion": logits},
        {"intent": labels, "emotion": unlabelled},
        {"intent": 0.95, "emotion": 0.95},
        {"intent": 0.10},
    )
    assert reports["intent"].abstain_rate <= 0.10 and not reports["intent"].target_met
    assert (reports["emotion"].n, reports["emotion"].temperature) == (0, 1.0)
    assert (reports["emotion"].threshold, reports["emotion"].abstain_rate) == (0.0, 0.0)
    assert np.isnan(reports["emotion"].ece_before)  # no rows: no calibration error, not 0


def test_ece_weighs_each_fifteenth_of_confidence_by_its_rows_and_bins_are_right_closed():
    # 0.62 and 0.68 fall in different fifteenths, (0.6, 0.667] and (0.667, 0.733]: a right row
    # at 0.62 is off by 0.38 and a wrong one at 0.68 by 0.68 (in one bin they would cancel)
    probs = np.array([[0.62, 0.38], [0.68, 0.32]])
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx((0.38 + 0.68) / 2)
    edge = np.linspace(0.0, 1.0, ECE_BINS + 1)[12]  # 0.8 closes the 12th bin
    bins = reliability_bins(np.array([[edge, 1 - edge], [0.81, 0.19]]), np.array([0, 0]))
    assert bins["count"].tolist() == [0] * 11 + [1, 1] + [0] * 2
