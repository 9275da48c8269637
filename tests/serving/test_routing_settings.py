"""What the routing policy's settings change: how likely is enough (`min_probability`), how many
intents a clarification offers and from what confidence, which rules are on, which intents a
long conversation ignores, whether a request for a person is read in the text; each at its
boundary."""

import pytest
from support.routing import (
    BOT,
    HUMAN,
    likely_urgent_and_upset,
    prediction,
    write_policy,
)

from kefu.serving.classifier import HeadPrediction
from kefu.serving.routing import (
    ConversationContext,
    Reason,
    decide,
)
from kefu.serving.routing_policy import RoutingPolicy


@pytest.mark.parametrize(("threshold", "action"), [("0.4", BOT), ("0.35", HUMAN), ("null", BOT)])
def test_min_probability_sets_how_likely_is_enough(bundle, tmp_path, threshold, action):
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"rules: {{high_urgency_negative: {{min_probability: {threshold}}}}}\n", encoding="utf-8"
    )
    policy = RoutingPolicy.for_bundle(bundle, path)
    assert decide(likely_urgent_and_upset(), ConversationContext(), policy).action is action
    # the labels alone still decide when they say high + anxious
    assert (
        decide(prediction(urgency="high", emotion="anxious"), ConversationContext(), policy).action
        is HUMAN
    )


def test_long_conversation_ignores_only_the_listed_intents(bundle):
    """With `ignore_intents: []` a closing turn past the limit counts as long like any other."""
    strict = RoutingPolicy.from_layers(
        [
            (bundle.policy, "bundle"),
            ({"rules": {"long_conversation": {"ignore_intents": []}}}, "f"),
        ],
        labels=bundle.labels,
        intent_groups=bundle.intent_groups,
        group_queues=bundle.group_queues,
        urgency_priorities=bundle.urgency_priorities,
    )
    closing = prediction(intent="greeting", urgency="low")
    assert decide(closing, ConversationContext(turn=6), strict).reasons == ["long_conversation"]


def test_clarify_offers_at_most_max_candidates(bundle, tmp_path):
    """Four intents over `min_confidence`: the default offers the best 3, `max_candidates: 2` two."""
    top = [("logistics_status", 0.3), ("logistics_issue", 0.25), ("order_status", 0.2)]
    top += [("urge_shipment", 0.15), ("other", 0.1)]
    unsure = prediction(abstain=("intent",), top=top)
    offered = decide(unsure, ConversationContext(), RoutingPolicy.for_bundle(bundle)).candidates
    assert [c.intent for c in offered] == ["logistics_status", "logistics_issue", "order_status"]
    two = RoutingPolicy.for_bundle(bundle, write_policy(tmp_path, "clarify: {max_candidates: 2}\n"))
    offered = decide(unsure, ConversationContext(), two).candidates
    assert [c.intent for c in offered] == ["logistics_status", "logistics_issue"]


def test_an_intent_exactly_at_min_confidence_is_offered(policy):
    top = [("logistics_status", 0.5), ("logistics_issue", 0.1), ("order_status", 0.0999)]
    decision = decide(prediction(abstain=("intent",), top=top), ConversationContext(), policy)
    assert [c.intent for c in decision.candidates] == ["logistics_status", "logistics_issue"]


def test_a_probability_exactly_at_min_probability_hands_over(policy):
    """P(high) 0.4 x P(anxious or dissatisfied) 0.25 is 0.1, the default `min_probability`."""
    guess = prediction(urgency="medium", emotion="neutral")
    guess.urgency.top = [("medium", 0.6), ("high", 0.4)]
    guess.emotion.top = [("neutral", 0.75), ("anxious", 0.25)]
    assert 0.4 * 0.25 == policy.high_urgency_min_probability == 0.1
    decision = decide(guess, ConversationContext(), policy)
    assert (decision.action, decision.reasons) == (HUMAN, [Reason.HIGH_URGENCY_NEGATIVE])
    guess.emotion.top = [("neutral", 0.76), ("anxious", 0.24)]  # 0.096: under it
    assert decide(guess, ConversationContext(), policy).action is BOT


def test_detect_in_text_false_honours_only_the_intents(bundle, tmp_path):
    path = write_policy(tmp_path, "rules: {human_requested: {detect_in_text: false}}\n")
    policy = RoutingPolicy.for_bundle(bundle, path)
    asking = prediction(intent="refund_return", asks_for_human=True)
    assert (decide(asking, ConversationContext(), policy).action, policy.human_request_in_text) == (
        BOT,
        False,
    )
    bare = decide(prediction(intent="human_agent"), ConversationContext(), policy)
    assert (bare.action, bare.reasons) == (HUMAN, [Reason.HUMAN_REQUESTED])


def test_an_untrained_head_makes_no_message_likely_urgent_and_upset(bundle, tmp_path):
    """`min_probability: 0` hands over every message both heads read; an untrained emotion head
    reads nothing, so the rule never fires (README, "Partial labels")."""
    path = write_policy(tmp_path, "rules: {high_urgency_negative: {min_probability: 0}}\n")
    policy = RoutingPolicy.for_bundle(bundle, path)
    guess = prediction(urgency="high")
    assert decide(guess, ConversationContext(), policy).reasons == [Reason.HIGH_URGENCY_NEGATIVE]
    guess.heads["emotion"] = HeadPrediction(None, None, None, True, [], trained=False)
    decision = decide(guess, ConversationContext(), policy)
    assert (decision.action, decision.reasons) == (BOT, [])


# a prediction and context that raise exactly one reason under the default policy
ONE_REASON = {
    Reason.HUMAN_REQUESTED: ({"intent": "refund_return", "asks_for_human": True}, {}),
    Reason.COMPLAINT: ({"intent": "complaint"}, {}),
    Reason.CRITICAL_URGENCY: ({"urgency": "critical"}, {}),
    Reason.ANGRY: ({"emotion": "angry"}, {}),
    Reason.HIGH_URGENCY_NEGATIVE: ({"urgency": "high", "emotion": "anxious"}, {}),
    Reason.LOW_CONFIDENCE: ({"abstain": ("intent",)}, {}),
    Reason.LONG_CONVERSATION: ({}, {"turn": 4}),
    Reason.REPEATED_INTENT: ({}, {"previous_intents": ("logistics_status",)}),
    Reason.CLARIFICATION_FAILED: ({"abstain": ("intent",)}, {"clarifications": 1}),
}


@pytest.mark.parametrize("reason", list(Reason), ids=[reason.value for reason in Reason])
def test_every_rule_is_switched_off_by_enabled_false(policy, bundle, tmp_path, reason):
    kwargs, context = ONE_REASON[reason]
    on = decide(prediction(**kwargs), ConversationContext(**context), policy)
    assert reason in on.reasons
    path = write_policy(tmp_path, f"rules: {{{reason.value}: {{enabled: false}}}}\n")
    off = decide(
        prediction(**kwargs), ConversationContext(**context), RoutingPolicy.for_bundle(bundle, path)
    )
    assert reason not in off.reasons
    assert off.reasons == [r for r in on.reasons if r is not reason]


def test_an_untrained_head_never_asks_the_customer_to_choose(bundle, tmp_path):
    """A policy that watches the urgency head as well: an untrained urgency head abstains on
    every message, yet routing ignores it (README, "Partial labels")."""
    path = write_policy(tmp_path, "rules: {low_confidence: {heads: [intent, urgency]}}\n")
    policy = RoutingPolicy.for_bundle(bundle, path)
    guess = prediction()
    guess.heads["urgency"] = HeadPrediction(None, None, None, True, [], trained=False)
    decision = decide(guess, ConversationContext(), policy)
    assert (decision.action, decision.reasons, decision.priority) == (BOT, [], "P2")
    guess.heads["intent"].abstain = True
    assert decide(guess, ConversationContext(), policy).reasons == [Reason.LOW_CONFIDENCE]
