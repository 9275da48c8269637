"""What `decide` reads and refuses: every label of a prediction, not only the top_k the caller
asked for; a conversation context checked when built; arguments of the wrong type named."""

import re

import numpy as np
import pytest
from support.paths import SAMPLE_TEXTS
from support.routing import (
    HUMAN,
    TOP_INTENTS,
    likely_urgent_and_upset,
    prediction,
)

from kefu.serving.classifier import Classifier
from kefu.serving.routing import (
    ConversationContext,
    Reason,
    decide,
)
from kefu.serving.routing_policy import RoutingPolicy


def test_a_route_reads_every_label_not_only_the_top_k_the_caller_asked_for(policy):
    """A prediction made with top_k=1 lists one label per head; routing reads the ranking."""
    guess = likely_urgent_and_upset()
    for head in ("urgency", "emotion"):
        guess.heads[head].ranked = guess.heads[head].top
        guess.heads[head].top = guess.heads[head].top[:1]
    decision = decide(guess, ConversationContext(), policy)
    assert (decision.action, decision.reasons) == (HUMAN, [Reason.HIGH_URGENCY_NEGATIVE])
    unsure = prediction(abstain=("intent",), top=TOP_INTENTS[:1])
    unsure.intent.ranked = TOP_INTENTS
    assert [c.intent for c in decide(unsure, ConversationContext(), policy).candidates] == [
        "logistics_status",
        "logistics_issue",
    ]


def test_predictions_route_alike_whatever_their_top_k(tiny_bundle, bundle):
    classifier = Classifier.from_bundle(tiny_bundle, intra_op_threads=1)
    every = classifier.predict(SAMPLE_TEXTS, top_k=50)
    # a rule on each head's second label, met exactly by the first message's probabilities:
    # its best labels alone never meet it
    (urgency, p_urgency), (emotion, p_emotion) = every[0].urgency.top[1], every[0].emotion.top[1]
    rule = {"urgency": [urgency], "emotions": [emotion], "min_probability": p_urgency * p_emotion}
    policy = RoutingPolicy.from_layers(
        [(bundle.policy, "bundle"), ({"rules": {"high_urgency_negative": rule}}, "test")],
        labels=bundle.labels,
        intent_groups=bundle.intent_groups,
        group_queues=bundle.group_queues,
        urgency_priorities=bundle.urgency_priorities,
    )
    routes = [decide(p, ConversationContext(), policy) for p in every]
    assert Reason.HIGH_URGENCY_NEGATIVE in routes[0].reasons
    for top_k in (1, 3):
        assert [
            decide(p, ConversationContext(), policy)
            for p in classifier.predict(SAMPLE_TEXTS, top_k=top_k)
        ] == routes


@pytest.mark.parametrize(
    ("context", "error", "message"),
    [
        ({"previous_intents": "refund_return"}, TypeError, "previous_intents must be a list of"),
        ({"previous_intents": [3]}, TypeError, "previous_intents[0] must be an intent id or None"),
        (
            {"previous_intents": ["refund_return", float("nan")]},
            TypeError,
            "previous_intents[1] must be an intent id or None, got nan (a missing value: None "
            "marks a turn whose intent abstained)",
        ),
        ({"turn": 0}, ValueError, "turn must be None or an integer >= 1, got 0"),
        ({"turn": "5"}, ValueError, "turn must be None or an integer >= 1, got '5'"),
        ({"clarifications": None}, ValueError, "clarifications must be an integer >= 0"),
    ],
)
def test_a_context_is_checked_when_built(context, error, message):
    with pytest.raises(error, match=re.escape(message)):
        ConversationContext(**context)


def test_a_long_wrong_previous_intents_is_shown_cut_between_characters():
    family = "👨\u200d👩\u200d👧"  # one emoji of five code points; repr escapes the joiners
    with pytest.raises(TypeError) as caught:
        ConversationContext(previous_intents=family * 10)
    shown = "'" + "👨\\u200d👩\\u200d👧" * 2 + "…"  # not cut inside the third, and marked
    assert str(caught.value).endswith(f"oldest first, got str {shown}")


def test_a_context_takes_numpy_integers_and_any_sequence_of_intents():
    context = ConversationContext(
        turn=np.int64(2), previous_intents=np.array(["refund_return"]), clarifications=np.int64(1)
    )
    assert context == ConversationContext(2, ("refund_return",), 1)
    assert type(context.turn) is int


def test_an_earlier_intent_the_policy_does_not_know_is_named(policy):
    context = ConversationContext(turn=2, previous_intents=["refund_return", "refund"])
    with pytest.raises(ValueError, match=re.escape("previous_intents[1] is 'refund', not an")):
        decide(prediction(), context, policy)


def test_a_prediction_whose_intent_the_policy_does_not_know_is_named(policy):
    with pytest.raises(ValueError, match=re.escape("the prediction's intent 'refund' is not an")):
        decide(prediction("refund"), ConversationContext(), policy)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"context": None}, "context must be a ConversationContext (ConversationContext() when"),
        ({"policy": None}, "policy must be a RoutingPolicy, e.g. RoutingPolicy.for_bundle("),
        ({"prediction": []}, "prediction must be one Prediction (an item of Classifier.predict"),
    ],
)
def test_arguments_of_the_wrong_type_are_named(policy, arguments, message):
    given = {"prediction": prediction(), "context": ConversationContext(), "policy": policy}
    with pytest.raises(TypeError, match=re.escape(message)):
        decide(**(given | arguments))
