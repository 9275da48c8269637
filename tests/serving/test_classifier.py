import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from support.paths import SAMPLE_TEXTS
from support.serving import copy_bundle

from kefu.errors import BundleError
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.schema import ONNX_OUTPUTS
from kefu.serving.classifier import Classifier, softmax
from kefu.serving.taxonomy import HEADS

TEXTS = [*SAMPLE_TEXTS, "好", "我的订单12345678901怎么还没发货，电话13812345678，急急急！！！" * 3]


@pytest.fixture(scope="module")
def classifier(tiny_bundle):
    return Classifier.from_bundle(tiny_bundle, intra_op_threads=1)


def test_batch_predictions_equal_one_by_one_predictions(classifier):
    batch = classifier.predict(TEXTS, top_k=5)
    single = [classifier.predict([text], top_k=5)[0] for text in TEXTS]
    for together, alone in zip(batch, single, strict=True):
        for head in HEADS:
            a, b = together.heads[head], alone.heads[head]
            assert a.label == b.label
            assert a.abstain == b.abstain
            assert a.confidence == pytest.approx(b.confidence, abs=1e-6)
            assert [label for label, _ in a.top] == [label for label, _ in b.top]
            np.testing.assert_allclose([p for _, p in a.top], [p for _, p in b.top], atol=1e-6)
        assert (together.group, together.truncated) == (alone.group, alone.truncated)


def test_predict_proba_rows_are_distributions_in_label_order(classifier, tiny_bundle):
    probs = classifier.predict_proba(TEXTS)
    labels = read_bundle(tiny_bundle).labels
    for head in HEADS:
        assert probs[head].shape == (len(TEXTS), len(labels[head]))
        np.testing.assert_allclose(probs[head].sum(axis=1), 1.0, atol=1e-9)
    prediction = classifier.predict(TEXTS[:1])[0]
    best = int(np.argmax(probs["intent"][0]))
    assert prediction.intent.label == labels["intent"][best]
    assert prediction.intent.confidence == pytest.approx(probs["intent"][0, best])


@pytest.mark.parametrize("top_k", [1, 3, 4, 50])
def test_top_k_lists_best_labels_first(classifier, top_k):
    prediction = classifier.predict(["我的快递三天没动了"], top_k=top_k)[0]
    for head in HEADS:
        head_prediction = prediction.heads[head]
        k = min(top_k, len(classifier.bundle.labels[head]))
        confidences = [p for _, p in head_prediction.top]
        assert len(head_prediction.top) == k
        assert confidences == sorted(confidences, reverse=True)
        assert head_prediction.top[0] == (head_prediction.label, head_prediction.confidence)
        assert head_prediction.name == classifier.bundle.label_names[head][head_prediction.label]


def test_abstains_when_top_probability_is_under_the_threshold(tiny_bundle, classifier):
    confidence = classifier.predict(["在吗"])[0].intent.confidence
    above = Classifier.from_bundle(
        tiny_bundle,
        intra_op_threads=1,
        calibration_overrides={"intent": {"threshold": confidence + 1e-6}},
    )
    at = Classifier.from_bundle(
        tiny_bundle,
        intra_op_threads=1,
        calibration_overrides={"intent": {"threshold": confidence - 1e-6}},
    )
    assert above.predict(["在吗"])[0].intent.abstain is True
    assert at.predict(["在吗"])[0].intent.abstain is False
    assert above.predict(["在吗"])[0].urgency.abstain is False  # other heads keep their rule


def test_abstains_when_the_top_two_are_too_close(tiny_bundle, classifier):
    top = classifier.predict(["在吗"])[0].emotion.top
    gap = top[0][1] - top[1][1]
    wide = Classifier.from_bundle(
        tiny_bundle, intra_op_threads=1, calibration_overrides={"emotion": {"margin": gap + 1e-6}}
    )
    narrow = Classifier.from_bundle(
        tiny_bundle, intra_op_threads=1, calibration_overrides={"emotion": {"margin": gap - 1e-6}}
    )
    assert wide.predict(["在吗"])[0].emotion.abstain is True
    assert narrow.predict(["在吗"])[0].emotion.abstain is False


def test_temperature_override_rescales_probabilities(tiny_bundle, classifier):
    hot = Classifier.from_bundle(
        tiny_bundle, intra_op_threads=1, calibration_overrides={"urgency": {"temperature": 2.0}}
    )
    logits = classifier.logits(classifier.encoder.encode(["退款"]))["urgency"]
    np.testing.assert_allclose(
        hot.predict_proba(["退款"])["urgency"], softmax(logits, 2.0), atol=1e-9
    )
    assert hot.calibration["urgency"].temperature == 2.0
    assert hot.calibration["intent"] == classifier.calibration["intent"]


def test_prediction_carries_group_entities_human_request_and_truncation(classifier, tiny_bundle):
    long_text = "快递" * 200 + "转人工 13812345678"
    prediction = classifier.predict([long_text])[0]
    assert prediction.truncated is True
    assert prediction.asks_for_human is True
    assert [(e.kind, e.text) for e in prediction.entities] == [("phone", "13812345678")]
    assert prediction.group == read_bundle(tiny_bundle).intent_groups[prediction.intent.label]
    assert classifier.predict(["好"])[0].truncated is False


def test_empty_input_gives_no_predictions(classifier):
    assert classifier.predict([]) == []


def test_int8_variant_loads_and_predicts(tiny_bundle):
    int8 = Classifier.from_bundle(tiny_bundle, variant="int8", intra_op_threads=1)
    assert int8.variant == "int8"
    assert len(int8.predict(TEXTS)) == len(TEXTS)


def test_int8_answers_do_not_depend_on_the_rest_of_the_call(tiny_bundle):
    int8 = Classifier.from_bundle(tiny_bundle, variant="int8", intra_op_threads=1)
    encoded = int8.encoder.encode(TEXTS)
    together = int8.logits(encoded)
    alone = [int8.logits(int8.encoder.encode([text])) for text in TEXTS]
    for head in HEADS:
        np.testing.assert_array_equal(together[head], np.concatenate([a[head] for a in alone]))
    # the graph run once over the padded batch shares activation scales between rows: other
    # numbers, which is why the INT8 variant runs row by row
    outputs = [ONNX_OUTPUTS[head] for head in HEADS]
    shared = dict(zip(HEADS, int8.session.run(outputs, encoded.as_onnx_feed()), strict=True))
    assert max(float(np.abs(shared[h] - together[h]).max()) for h in HEADS) > 1e-4


def test_a_lone_session_is_started_only_for_more_threads_than_the_shared_one(tiny_bundle):
    """As many threads as the shared session has would be a second copy of the model for
    nothing."""
    same = Classifier.from_bundle(tiny_bundle, intra_op_threads=2, lone_threads=2)
    wider = Classifier.from_bundle(tiny_bundle, intra_op_threads=2, lone_threads=3)
    assert (same.lone_session, wider.lone_session is not None) == (None, True)


def test_unknown_variant_is_refused(tiny_bundle):
    with pytest.raises(BundleError, match="unknown model variant 'fp16'"):
        Classifier.from_bundle(tiny_bundle, variant="fp16")


def test_model_version_comes_from_the_manifest(classifier):
    assert classifier.model_version == "tiny-0"


def test_predict_proba_of_no_texts_has_no_rows(classifier, tiny_bundle):
    for variant in ("fp32", "int8"):
        model = Classifier.from_bundle(tiny_bundle, variant=variant, intra_op_threads=1)
        probs = model.predict_proba([])
        assert {head: probs[head].shape for head in HEADS} == {
            head: (0, len(model.bundle.labels[head])) for head in HEADS
        }


def test_every_label_is_ranked_whatever_top_k(classifier):
    prediction = classifier.predict(["我的快递三天没动了"], top_k=1)[0]
    for head in HEADS:
        ranked = prediction.heads[head].ranked
        assert len(prediction.heads[head].top) == 1
        assert sorted(label for label, _ in ranked) == sorted(classifier.bundle.labels[head])
        assert ranked[0] == prediction.heads[head].top[0]
        assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True)


def test_a_prediction_is_one_flat_row_of_plain_values(classifier):
    prediction = classifier.predict(["转人工 13812345678"])[0]
    row = prediction.as_plain()
    assert list(row) == [
        *(
            f"{head}{suffix}"
            for head in HEADS
            for suffix in ("", "_name", "_confidence", "_abstain")
        ),
        *("group", "truncated", "asks_for_human", "entities"),
    ]
    assert row["intent"] == prediction.intent.label
    assert row["emotion_confidence"] == prediction.emotion.confidence
    assert row["asks_for_human"] is True
    assert row["entities"] == [{"kind": "phone", "text": "13812345678", "start": 4, "end": 15}]
    assert json.loads(json.dumps(row, ensure_ascii=False)) == row


def test_one_classifier_answers_several_threads_as_it_answers_one(classifier):
    texts = TEXTS * 4
    expected = [(p.intent.label, p.intent.confidence) for p in classifier.predict(texts)]

    def every_third(start):
        rows = range(start, len(texts), 3)
        answers = classifier.predict([texts[row] for row in rows])
        return [
            (row, p.intent.label, p.intent.confidence) for row, p in zip(rows, answers, strict=True)
        ]

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = [item for chunk in pool.map(every_third, [0, 1, 2] * 4) for item in chunk]
    for row, label, confidence in results:
        assert label == expected[row][0]
        assert confidence == pytest.approx(expected[row][1], abs=1e-5)


def test_many_texts_are_run_a_chunk_at_a_time_with_the_same_answers(tiny_bundle, monkeypatch):
    classifier = Classifier.from_bundle(tiny_bundle, intra_op_threads=1, variant="fp32")
    whole = classifier.predict(TEXTS, top_k=5)
    whole_probs = classifier.predict_proba(TEXTS)
    calls: list[int] = []
    run_logits = classifier.logits

    def counted(batch, lone=False):
        calls.append(len(batch.input_ids))
        return run_logits(batch, lone)

    monkeypatch.setattr(classifier, "logits", counted)
    monkeypatch.setattr("kefu.serving.classifier.PREDICT_CHUNK", 3)
    chunked = classifier.predict(TEXTS, top_k=5)
    chunked_probs = classifier.predict_proba(TEXTS)
    full, rest = divmod(len(TEXTS), 3)
    assert calls == ([3] * full + [rest] * bool(rest)) * 2
    for together, in_chunks in zip(whole, chunked, strict=True):
        assert (together.intent.label, together.truncated) == (
            in_chunks.intent.label,
            in_chunks.truncated,
        )
        assert [label for label, _ in together.intent.top] == [
            label for label, _ in in_chunks.intent.top
        ]
    for head in HEADS:
        np.testing.assert_allclose(whole_probs[head], chunked_probs[head], atol=1e-6)


def test_softmax_divides_the_logits_by_the_temperature():
    logits = np.array([[0.0, 2 * np.log(3.0)], [1.0, 1.0]])
    np.testing.assert_allclose(softmax(logits, 2.0), [[0.25, 0.75], [0.5, 0.5]], atol=1e-12)
    np.testing.assert_allclose(softmax(logits[:1], 1.0), [[0.1, 0.9]], atol=1e-12)


def test_softmax_of_logits_past_what_exp_can_hold_is_still_a_distribution():
    """A low temperature makes logits of a few tens into hundreds: exp(800) overflows."""
    logits = np.array([[8.0, 0.0, -8.0], [-8.0, 8.0, 7.0]])
    np.testing.assert_allclose(
        softmax(logits, 0.01), [[1.0, 0.0, 0.0], [0.0, 1.0, np.exp(-100.0)]], atol=1e-12
    )


def test_probabilities_use_each_heads_own_temperature(tiny_bundle, classifier):
    """exp(logit / T) normalised with each head's T, written out without `softmax`."""
    temperatures = {"intent": 0.5, "urgency": 2.0, "emotion": 4.0}
    hot = Classifier.from_bundle(
        tiny_bundle,
        intra_op_threads=1,
        calibration_overrides={head: {"temperature": t} for head, t in temperatures.items()},
    )
    logits = classifier.logits(classifier.encoder.encode(["退款"]))
    for head, temperature in temperatures.items():
        scaled = np.exp(logits[head].astype(np.float64) / temperature)
        expected = scaled / scaled.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(hot.predict_proba(["退款"])[head], expected, atol=1e-9)


def test_a_confidence_exactly_at_the_threshold_or_margin_does_not_abstain(tiny_bundle, classifier):
    """A head abstains when its top probability or top-1/top-2 gap is *under* the rule."""
    intent = classifier.predict(["在吗"])[0].intent
    gap = intent.top[0][1] - intent.top[1][1]
    at_both = Classifier.from_bundle(
        tiny_bundle,
        intra_op_threads=1,
        calibration_overrides={"intent": {"threshold": intent.confidence, "margin": gap}},
    )
    assert at_both.predict(["在吗"])[0].intent.abstain is False


def test_a_caller_changing_one_untrained_head_changes_no_other_result(tiny_bundle, tmp_path):
    untrained = copy_bundle(tiny_bundle, tmp_path / "intent-only", untrained_heads=["emotion"])
    classifier = Classifier.from_bundle(untrained, intra_op_threads=1)
    first, second = classifier.predict(["在吗", "发票"])
    first.emotion.top.append(("angry", 1.0))
    first.emotion.ranked.append(("angry", 1.0))
    (later,) = classifier.predict(["在吗"])
    for prediction in (second, later):
        assert (prediction.emotion.top, prediction.emotion.ranking) == ([], [])
        assert prediction.emotion.label is None and not prediction.emotion.trained
