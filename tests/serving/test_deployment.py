"""The predict-then-route path: contexts go with their messages, one each; `triage` and
`triage_in_batches` check texts alike."""

import re

import pytest

from kefu.errors import InputError
from kefu.serving.deployment import Deployment
from kefu.serving.routing import ConversationContext


@pytest.fixture(scope="module")
def deployment(tiny_bundle):
    return Deployment.load(tiny_bundle, threads=1)


@pytest.mark.parametrize("method", ["triage", "triage_in_batches"])
def test_contexts_must_match_the_messages_one_to_one(deployment, method):
    message = "2 contexts for 3 messages; pass one ConversationContext per message"
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(deployment, method)(["在吗", "转人工", "好"], [ConversationContext()] * 2)


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
