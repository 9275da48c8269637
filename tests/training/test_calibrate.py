import numpy as np
import pytest

from kefu.serving.classifier import softmax
from kefu.training.calibrate import (
    MIN_ANSWERED,
    calibrate_heads,
    choose_abstention,
    fit_temperature,
)
from kefu.training.calibration_metrics import expected_calibration_error
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
    assert precision >= correct.mean()  # still the most precise rule within the cap
