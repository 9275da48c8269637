"""The predict-then-route path: contexts go with their messages, one each."""

import re

import pytest

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
