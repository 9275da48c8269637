"""Bootstrap intervals of a test set's macro-F1 and of the model's lead over the baseline."""

import numpy as np
import pytest

from kefu.serving.taxonomy import HEADS
from kefu.training.data.loader import LabelledData, LabelledRow
from kefu.training.evaluation.bootstrap import (
    draw_weights,
    escalation_intervals,
    macro_f1_draws,
    percentile_interval,
    resampling_units,
    uncertainty_block,
)
from kefu.training.evaluation.head_metrics import HeadGold, supported_macro_f1
from kefu.training.evaluation.metrics import head_scores


def data_of(extras):
    rows = [
        LabelledRow(f"r{i}", "文本", dict.fromkeys(HEADS), i + 1, extra)
        for i, extra in enumerate(extras)
    ]
    return LabelledData("test.jsonl", rows, [])


def gold_of(labels):
    labels = np.asarray(labels, dtype=np.int64)
    return HeadGold(np.arange(len(labels)), labels, 0)


def test_rows_of_one_session_share_a_unit_and_lone_rows_have_their_own():
    data = data_of([{"session": "a"}, {"session": "b"}, {"session": "a"}, {}, {"session": ""}])
    units, name = resampling_units(data)
    assert name == "session"
    assert units[0] == units[2] and len(set(units.tolist())) == 4
    units, _ = resampling_units(data_of([{"session": "a"}, {}, {}]))
    assert units.tolist() == [0, 1, 2]  # two rows without a session are two units, not one


def test_written_families_group_when_there_are_no_sessions_and_messages_otherwise():
    units, name = resampling_units(data_of([{"family": "f1"}, {"family": "f1"}, {"family": "f2"}]))
    assert (name, units.tolist()) == ("family", [0, 0, 1])
    units, name = resampling_units(data_of([{}, {"source": "jd"}]))
    assert (name, units.tolist()) == ("message", [0, 1])
    both = [{"session": "s1", "family": "f1"}, {"session": "s2", "family": "f1"}]
    units, name = resampling_units(data_of(both))
    assert (name, units.tolist()) == ("session", [0, 1])  # chats first, then written families


def test_each_resample_draws_as_many_units_as_the_set_has_and_whole_units_at_once():
    units = np.array([0, 0, 1, 2, 2, 2])
    chunks = list(draw_weights(units, resamples=120, seed=3, chunk=50))
    assert [len(chunk) for chunk in chunks] == [50, 50, 20]
    weights = np.concatenate(chunks)
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    per_unit = weights[:, [0, 2, 3]]  # one row of each unit: its count in the draw
    assert (per_unit.sum(axis=1) == 3).all()


def test_unit_weights_give_the_plain_macro_f1_over_the_averaged_classes():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, size=200)
    predicted = np.where(rng.random(200) < 0.7, gold, rng.integers(0, 4, size=200))
    gold[:3] = 4  # a class with 3 rows: shown per class, not averaged
    classes = [0, 1, 2, 3]
    draws = macro_f1_draws(gold, predicted, np.ones((2, 200), dtype=np.int32), classes)
    expected = supported_macro_f1(head_scores(gold, predicted, list("abcde")), min_support=10)
    assert draws == pytest.approx([expected, expected])


def block_for(data, gold_labels, model, baseline, resamples=400):
    golds = {head: gold_of(gold_labels) for head in HEADS}
    predicted = {head: np.asarray(model) for head in HEADS}
    reference = {head: (None if baseline is None else np.asarray(baseline)) for head in HEADS}
    return uncertainty_block(data, golds, predicted, reference, 10, resamples=resamples)


def test_a_perfect_model_has_no_spread_and_equal_predictions_lead_by_nothing():
    gold = [0, 1] * 30
    block = block_for(data_of([{}] * 60), gold, gold, gold)
    assert block["intent"]["macro_f1"] == [1.0, 1.0]
    assert block["intent"]["lead_points"] == [0.0, 0.0]
    assert (block["unit"], block["units"], block["level"]) == ("message", 60, 0.95)


def test_the_interval_holds_the_score_is_reproducible_and_needs_a_baseline_for_the_lead():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, size=300)
    model = np.where(rng.random(300) < 0.8, gold, (gold + 1) % 3)
    baseline = np.where(rng.random(300) < 0.6, gold, (gold + 1) % 3)
    data = data_of([{}] * 300)
    block = block_for(data, gold, model, baseline)
    point = supported_macro_f1(head_scores(gold, model, list("abc")), 10)
    low, high = block["urgency"]["macro_f1"]
    assert low < point < high and high - low < 0.2
    assert block["urgency"]["lead_points"][0] > 0  # 0.8 against 0.6 accuracy: a clear lead
    assert block == block_for(data, gold, model, baseline)
    alone = block_for(data, gold, model, None)
    assert alone["urgency"]["macro_f1"] == block["urgency"]["macro_f1"]
    assert alone["urgency"]["lead_points"] is None and alone["urgency"]["baseline_macro_f1"] is None


def test_chats_read_alike_widen_the_interval_when_drawn_whole():
    """Twenty chats of 10 turns, each read all right or all wrong: resampling turns one by
    one would claim far more certainty than twenty chats give."""
    gold = [0, 1] * 100
    model = [g if (row // 10) % 4 else 1 - g for row, g in enumerate(gold)]
    by_turn = block_for(data_of([{}] * 200), gold, model, None)
    by_chat = block_for(data_of([{"session": row // 10} for row in range(200)]), gold, model, None)
    width = {name: b["intent"]["macro_f1"][1] - b["intent"]["macro_f1"][0] for name, b in
             (("turn", by_turn), ("chat", by_chat))}  # fmt: skip
    assert by_chat["unit"] == "session" and by_chat["units"] == 20
    assert width["chat"] > 2 * width["turn"]


def test_a_head_without_labels_or_averaged_classes_has_no_interval():
    block = block_for(data_of([{}] * 5), [0, 1, 0, 1, 0], [0, 1, 0, 1, 0], None)
    assert block["emotion"] == {"macro_f1": None, "baseline_macro_f1": None, "lead_points": None}


def test_hand_over_intervals_hold_the_measured_rates_and_are_empty_without_customers():
    true = [True] * 20 + [False] * 180
    predicted = [True] * 16 + [False] * 4 + [True] * 24 + [False] * 156  # recall 0.8, prec. 0.4
    spread = escalation_intervals(np.arange(200), true, predicted, resamples=400)
    assert spread["recall"][0] < 0.8 < spread["recall"][1]
    assert spread["precision"][0] < 0.4 < spread["precision"][1]
    assert spread["rate_ratio"][0] < 2.0 < spread["rate_ratio"][1]
    perfect = escalation_intervals(np.arange(200), true, true, resamples=100)
    assert perfect == {"precision": [1.0, 1.0], "recall": [1.0, 1.0], "rate_ratio": [1.0, 1.0]}
    nobody = escalation_intervals(np.arange(5), [False] * 5, [False] * 5, resamples=50)
    assert nobody == {"precision": None, "recall": None, "rate_ratio": None}
    assert escalation_intervals(np.arange(0), [], [])["recall"] is None


def test_the_interval_cuts_two_and_a_half_percent_off_each_end():
    assert percentile_interval(np.arange(101.0)) == pytest.approx([2.5, 97.5])
    assert percentile_interval(np.empty(0)) is None


def test_hand_over_intervals_depend_on_how_rows_group_not_on_the_units_numbers():
    """The kept rows of a set carry the unit numbers of the whole set, with gaps."""
    true = [row % 4 == 0 for row in range(40)]
    predicted = [row % 3 == 0 for row in range(40)]
    dense = np.arange(40) // 2
    assert escalation_intervals(10 * dense + 7, true, predicted) == escalation_intervals(
        dense, true, predicted
    )
