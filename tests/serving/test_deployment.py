"""The predict-then-route path: contexts go with their messages, one each; `triage` and
`triage_in_batches` check texts alike."""

import json
import re
import time

import numpy as np
import pytest

from kefu.errors import InputError, VariantNotFound
from kefu.serving.bundle.schema import MANIFEST, MODEL_INT8
from kefu.serving.deployment import Deployment, check_deployable
from kefu.serving.routing import ConversationContext, Reason


@pytest.fixture(scope="module")
def deployment(tiny_bundle):
    return Deployment.load(tiny_bundle, threads=1)


@pytest.mark.parametrize("method", ["triage", "triage_in_batches"])
def test_contexts_must_match_the_messages_one_to_one(deployment, method):
    message = "2 contexts for 3 messages; pass one ConversationContext per message"
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(deployment, method)(["在吗", "转人工", "好"], [ConversationContext()] * 2)


@pytest.mark.parametrize("method", ["triage", "triage_in_batches"])
@pytest.mark.parametrize(
    ("contexts", "message"),
    [
        (
            [ConversationContext(), {"turn": 2}, None],
            "contexts[1] is dict {'turn': 2}, not a ConversationContext; ConversationContext() "
            "for a message without one",
        ),
        (
            ConversationContext(turn=2),
            "contexts must be a list of ConversationContext, one per message, got one "
            "ConversationContext; for the same context on every message: [context] * len(texts)",
        ),
    ],
)
def test_a_context_that_is_not_one_is_named_by_its_position(deployment, method, contexts, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        getattr(deployment, method)(["在吗", "转人工", "好"], contexts)


@pytest.mark.parametrize("method", ["triage", "triage_in_batches"])
def test_each_message_is_routed_with_its_own_context(deployment, method):
    past = ConversationContext(turn=deployment.policy.max_turns + 1)
    results = getattr(deployment, method)(["在吗", "在吗"], [ConversationContext(turn=1), past])
    if method == "triage_in_batches":
        results = results.results
    reasons = [decision.reasons for _, decision in results]
    assert [Reason.LONG_CONVERSATION in found for found in reasons] == [False, True]


def test_the_labels_kept_for_rerouting_are_a_count_apart_from_the_ranked_list(deployment):
    labels = deployment.bundle.labels
    every = max(deployment.policy.max_candidates, len(labels["urgency"]), len(labels["emotion"]))
    assert deployment.top_k_for_rerouting(1) == every
    assert deployment.top_k_for_rerouting(every + 5) == every + 5
    (triage,) = deployment.triage(["在吗"], top_k=deployment.top_k_for_rerouting(1))
    assert len(triage.prediction.urgency.top) == len(labels["urgency"])
    # `ranked` names one thing: HeadPrediction's list of every label, not this count
    assert not hasattr(deployment, "ranked")
    assert isinstance(triage.prediction.urgency.ranked, list)


def test_triage_lists_three_labels_per_head_by_default(deployment):
    """The server's default top_k: three labels, best first, out of every label ranked."""
    (triage,) = deployment.triage(["在吗"])
    for head in ("intent", "urgency", "emotion"):
        found = triage.prediction.heads[head]
        assert len(found.top) == 3 and found.top == found.ranked[:3]


def test_load_seconds_is_the_time_the_load_took_warm_up_included(tiny_bundle, monkeypatch):
    """What /admin/reload and the start-up log report: the whole load, not the reading alone."""
    warm_up = 0.3
    triage = Deployment.triage

    def slow_triage(self, *args, **kwargs):
        time.sleep(warm_up)
        return triage(self, *args, **kwargs)

    monkeypatch.setattr(Deployment, "triage", slow_triage)
    started = time.perf_counter()
    loaded = Deployment.load(tiny_bundle, threads=1, warm=True)
    took = time.perf_counter() - started
    assert warm_up <= loaded.load_seconds <= took


@pytest.mark.parametrize(
    "texts",
    [
        "在吗",  # one str, not a list of texts
        ["在吗", None],
        ["在吗", "  <br> "],
        ["退款\udce4"],
        ["在吗", "快" * 20_001],
    ],
    ids=["str", "none", "empty", "surrogate", "too-long"],
)
def test_triage_in_batches_refuses_what_triage_refuses_with_the_same_error(deployment, texts):
    with pytest.raises((TypeError, InputError)) as by_triage:
        deployment.triage(texts)
    with pytest.raises(type(by_triage.value)) as in_batches:
        deployment.triage_in_batches(texts)
    assert str(in_batches.value) == str(by_triage.value)
    assert getattr(in_batches.value, "field", None) == getattr(by_triage.value, "field", None)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"top_k": 0}, "top_k must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
    ],
)
def test_triage_in_batches_checks_its_counts(deployment, option, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        deployment.triage_in_batches(["在吗"], **option)


def test_texts_already_checked_row_by_row_are_not_checked_again(deployment):
    """Batch scoring's readers refuse bad rows one by one (a reject each, with the job's own
    limit): what reaches the model is scored as given."""
    run = deployment.triage_in_batches(["在吗", "快" * 20_001], check_texts=False)
    assert [p.truncated for p, _ in run.results] == [False, True]


def test_a_deployment_refuses_texts_over_its_limit_and_warms_within_it(tiny_bundle):
    strict = Deployment.load(
        tiny_bundle, threads=1, lone_threads=2, max_text_chars=5, warm=True
    )  # the warm-up texts, one of 576 characters, are cut to the limit
    assert strict.classifier.lone_session is not None
    assert len(strict.triage(["在吗在吗在"], lone=True)) == 1
    for method in (strict.triage, strict.triage_in_batches):
        with pytest.raises(InputError, match=r"^texts\[0\] has 6 characters; the limit is 5 "):
            method(["在吗在吗在吗"])


def test_the_cheap_checks_refuse_an_empty_variant_and_a_missing_variant_file(bundle_copy):
    """Before any worker starts: "" is no variant (it would quietly load the default), and a
    variant the bundle has no file for is named with the ones it has."""
    with pytest.raises(InputError) as empty:
        check_deployable(bundle_copy, variant="")
    assert (str(empty.value), empty.value.field) == (
        "unknown model variant ''; expected one of ['fp32', 'int8']",
        "variant",
    )
    # a bundle exported without INT8: no file, and none listed
    manifest = json.loads((bundle_copy / MANIFEST).read_text(encoding="utf-8"))
    del manifest["files"][MODEL_INT8]
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    (bundle_copy / MODEL_INT8).unlink()
    with pytest.raises(VariantNotFound) as missing:
        check_deployable(bundle_copy, variant="int8")
    assert str(missing.value) == (
        f"bundle {bundle_copy} has no int8 model ({MODEL_INT8}), only fp32; "
        "pass --variant with one it has"
    )


def test_batches_sorted_by_length_give_results_and_logits_back_in_input_order(deployment):
    """Bulk defaults: one label per head, no entity spans; the logits kept are the rows' own."""
    texts = ["我的订单12345678901怎么还没发货" * 3, "在吗", "发票开了没，电话13812345678", "好"]
    run = deployment.triage_in_batches(texts, batch_size=2, keep_logits=True)
    alone = [deployment.triage([text], top_k=1)[0].prediction for text in texts]
    assert [p.intent.label for p, _ in run.results] == [p.intent.label for p in alone]
    assert [(len(p.intent.top), p.entities) for p, _ in run.results] == [(1, [])] * 4
    assert run.logits is not None
    classifier = deployment.classifier
    for row, text in enumerate(texts):
        own = classifier.logits(classifier.encoder.encode([text]))
        for head, values in own.items():
            np.testing.assert_allclose(run.logits[head][row], values[0], atol=1e-5)
