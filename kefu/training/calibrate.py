"""Per-head temperature scaling and abstention rules, fitted on dev logits.

Usage: `calibration, report = calibrate_heads(dev_logits, dev_labels, target_precision)`.

A fine-tuned classifier is over-confident; one temperature per head (the single parameter
that minimises dev negative log-likelihood) fixes most of it without changing any argmax.
Then each head gets the abstention rule serving applies (`confidence < threshold` or
`top1 - top2 < margin` -> abstain): the pair that answers the most dev messages while the
answered ones reach the target precision (e.g. intent >= 0.95), never abstaining on more
than `max_abstain_rate` of dev (an abstaining intent makes the bot ask the customer to
clarify, and a bot that asks about every third message is not answering). When no pair reaches
the target within that cap on at least MIN_ANSWERED rows, the most precise rule within the cap
is kept, and the report says the target was missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from kefu.serving.bundle.schema import HeadCalibration
from kefu.serving.classifier import softmax
from kefu.training.calibration_metrics import expected_calibration_error

MIN_ANSWERED = 20  # a precision measured on fewer answered rows means little
MARGINS = np.round(np.arange(0.0, 0.51, 0.025), 3)  # candidate top1-top2 margins
THRESHOLD_QUANTILES = np.linspace(0.0, 0.99, 100)  # candidate thresholds: confidence quantiles


@dataclass
class HeadCalibrationReport:
    """What calibration did to one head on dev, for the manifest notes and the model card."""

    n: int
    temperature: float
    ece_before: float
    ece_after: float
    threshold: float
    margin: float
    target_precision: float
    answered_precision: float  # accuracy on rows the head does not abstain on
    abstain_rate: float
    target_met: bool


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising mean NLL of softmax(logits / T); logits (n, k), labels (n,)."""
    if len(labels) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        probs = softmax(logits, float(np.exp(log_t)))
        return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())

    # NLL is smooth and unimodal in log T; bounds 0.05..20 cover any sane model
    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def choose_abstention(
    probs: np.ndarray, labels: np.ndarray, target_precision: float, max_abstain_rate: float = 1.0
) -> tuple[float, float, float, float, bool]:
    """(threshold, margin, answered precision, abstain rate, target met) for calibrated probs."""
    n = len(labels)
    if n == 0:
        return 0.0, 0.0, float("nan"), 0.0, False
    ordered = np.sort(probs, axis=1)
    confidence, gap = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
    correct = probs.argmax(axis=1) == labels
    thresholds = np.unique(np.concatenate([[0.0], np.quantile(confidence, THRESHOLD_QUANTILES)]))
    # answered[t, m, row]: the head answers `row` under threshold t and margin m
    answered = (confidence[None, None, :] >= thresholds[:, None, None]) & (
        gap[None, None, :] >= MARGINS[None, :, None]
    )
    n_answered = answered.sum(axis=2)
    precision = (answered & correct).sum(axis=2) / np.maximum(n_answered, 1)
    enough = (n_answered >= min(MIN_ANSWERED, n)) & (n_answered >= (1.0 - max_abstain_rate) * n)
    # a tiny tolerance: precision is a ratio of integers, 0.95 must count as reaching 0.95
    feasible = enough & (precision >= target_precision - 1e-9)
    if feasible.any():
        # most answered rows first; among equals, the lowest threshold and margin
        score = np.where(feasible, n_answered, -1)
        t_index, m_index = np.unravel_index(np.argmax(score), score.shape)
        met = True
    else:
        score = np.where(enough, precision, -1.0)
        t_index, m_index = np.unravel_index(np.argmax(score), score.shape)
        met = False
    chosen = int(n_answered[t_index, m_index])
    return (
        float(thresholds[t_index]),
        float(MARGINS[m_index]),
        float(precision[t_index, m_index]),
        1.0 - chosen / n,
        met,
    )


def calibrate_heads(
    logits: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    target_precision: Mapping[str, float],
    max_abstain_rate: Mapping[str, float] | None = None,
) -> tuple[dict[str, HeadCalibration], dict[str, HeadCalibrationReport]]:
    """Fit every head on the rows that carry its label (labels < 0 are skipped)."""
    calibration, reports = {}, {}
    for head, head_logits in logits.items():
        keep = labels[head] >= 0
        head_logits, head_labels = head_logits[keep], labels[head][keep]
        temperature = fit_temperature(head_logits, head_labels)
        probs = softmax(head_logits, temperature)
        threshold, margin, precision, abstain_rate, met = choose_abstention(
            probs, head_labels, target_precision[head], (max_abstain_rate or {}).get(head, 1.0)
        )
        calibration[head] = HeadCalibration(temperature, threshold, margin)
        reports[head] = HeadCalibrationReport(
            n=int(keep.sum()),
            temperature=temperature,
            ece_before=expected_calibration_error(softmax(head_logits), head_labels),
            ece_after=expected_calibration_error(probs, head_labels),
            threshold=threshold,
            margin=margin,
            target_precision=target_precision[head],
            answered_precision=precision,
            abstain_rate=abstain_rate,
            target_met=met,
        )
    return calibration, reports
