"""One table row per routing rule of spec/taxonomy.md ("Routing"): action, reasons, priority."""

import re

import numpy as np
import pytest
from support.paths import SAMPLE_TEXTS

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.classifier import Classifier, HeadPrediction, Prediction
from kefu.serving.routing import (
    Action,
    Candidate,
    ConversationContext,
    Decision,
    Reason,
    choose_action,
    content_reasons,
    decide,
)
from kefu.serving.routing_policy import RoutingPolicy


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return read_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def policy(bundle):
    return RoutingPolicy.for_bundle(bundle)


TOP_INTENTS = [("logistics_status", 0.45), ("logistics_issue", 0.3), ("order_status", 0.05)]


def prediction(
    intent="logistics_status",
    urgency="medium",
    emotion="neutral",
    *,
    abstain=(),
    asks_for_human=False,
    top=None,
):
    heads = {
        head: HeadPrediction(label, label, 0.9, head in abstain, [(label, 0.9)])
        for head, label in (("intent", intent), ("urgency", urgency), ("emotion", emotion))
    }
    if top is not None:
        heads["intent"].top = top
    return Prediction(heads=heads, group="", asks_for_human=asks_for_human)


BOT, CLARIFY, HUMAN = Action.BOT, Action.CLARIFY, Action.HUMAN
# (case, prediction kwargs, context, (queue, priority, action, reasons))
RULES = [
    ("plain request: the bot answers", {}, {}, ("物流组", "P2", BOT, [])),
    (
        "intent human_agent",
        {"intent": "human_agent"},
        {},
        ("投诉专席", "P2", HUMAN, ["human_requested"]),
    ),
    (
        "concrete request that also asks for a human",
        {"intent": "refund_return", "asks_for_human": True},
        {},
        ("售后组", "P2", HUMAN, ["human_requested"]),
    ),
    ("intent complaint", {"intent": "complaint"}, {}, ("投诉专席", "P2", HUMAN, ["complaint"])),
    (
        "urgency critical",
        {"urgency": "critical"},
        {},
        ("物流组", "P0", HUMAN, ["critical_urgency"]),
    ),
    (
        "emotion angry raises low urgency to P1",
        {"urgency": "low", "emotion": "angry"},
        {},
        ("物流组", "P1", HUMAN, ["angry"]),
    ),
    (
        "angry keeps the higher P0",
        {"urgency": "critical", "emotion": "angry"},
        {},
        ("物流组", "P0", HUMAN, ["critical_urgency", "angry"]),
    ),
    (
        "high urgency + anxious",
        {"urgency": "high", "emotion": "anxious"},
        {},
        ("物流组", "P1", HUMAN, ["high_urgency_negative"]),
    ),
    (
        "high urgency + dissatisfied",
        {"urgency": "high", "emotion": "dissatisfied"},
        {},
        ("物流组", "P1", HUMAN, ["high_urgency_negative"]),
    ),
    ("high urgency + neutral: bot", {"urgency": "high"}, {}, ("物流组", "P1", BOT, [])),
    ("medium urgency + anxious: bot", {"emotion": "anxious"}, {}, ("物流组", "P2", BOT, [])),
    (
        "intent not confident: clarify, never human on its own",
        {"abstain": ("intent",)},
        {},
        ("物流组", "P2", CLARIFY, ["low_confidence"]),
    ),
    (
        "only urgency not confident: the policy watches the intent head",
        {"abstain": ("urgency",)},
        {},
        ("物流组", "P2", BOT, []),
    ),
    (
        "not confident and angry: the content rule hands over",
        {"emotion": "angry", "abstain": ("intent",)},
        {},
        ("物流组", "P1", HUMAN, ["angry", "low_confidence"]),
    ),
    (
        "more than 3 customer turns",
        {},
        {"turn": 4},
        ("物流组", "P2", HUMAN, ["long_conversation"]),
    ),
    ("3 customer turns: not yet long", {}, {"turn": 3}, ("物流组", "P2", BOT, [])),
    (
        "a thanks or goodbye past the turn limit closes the chat: nothing to hand over",
        {"intent": "greeting", "urgency": "low"},
        {"turn": 6},
        ("机器人自助", "P3", BOT, []),
    ),
    (
        "a closing turn that is angry still goes to a person",
        {"intent": "greeting", "urgency": "low", "emotion": "angry"},
        {"turn": 6},
        ("机器人自助", "P1", HUMAN, ["angry"]),
    ),
    (
        "same intent as an earlier turn",
        {},
        {"previous_intents": ("order_status", "logistics_status")},
        ("物流组", "P2", HUMAN, ["repeated_intent"]),
    ),
    (
        "earlier turns had other intents",
        {},
        {"previous_intents": ("order_status",)},
        ("物流组", "P2", BOT, []),
    ),
    (
        "a greeting again is no repeated request",
        {"intent": "greeting", "urgency": "low"},
        {"previous_intents": ("greeting",)},
        ("机器人自助", "P3", BOT, []),
    ),
    (
        "an earlier abstained turn is no repeat of anything",
        {},
        {"previous_intents": (None,)},
        ("物流组", "P2", BOT, []),
    ),
    (
        "unsure again after a clarification: human",
        {"abstain": ("intent",)},
        {"clarifications": 1},
        ("物流组", "P2", HUMAN, ["low_confidence", "clarification_failed"]),
    ),
    (
        "unsure again after an abstained turn: human",
        {"abstain": ("intent",)},
        {"previous_intents": ("order_status", None)},
        ("物流组", "P2", HUMAN, ["low_confidence", "clarification_failed"]),
    ),
    (
        "unsure, the abstention was two turns ago: clarify again",
        {"abstain": ("intent",)},
        {"previous_intents": (None, "order_status")},
        ("物流组", "P2", CLARIFY, ["low_confidence"]),
    ),
    (
        "confident after a clarification: the clarification worked, bot",
        {},
        {"clarifications": 1, "previous_intents": (None,)},
        ("物流组", "P2", BOT, []),
    ),
    ("priority low -> P3", {"urgency": "low"}, {}, ("物流组", "P3", BOT, [])),
    (
        "every reason at once, in the fixed order",
        {
            "intent": "complaint",
            "urgency": "critical",
            "emotion": "angry",
            "abstain": ("intent",),
            "asks_for_human": True,
        },
        {"turn": 9, "previous_intents": ("complaint",), "clarifications": 2},
        # every reason but high_urgency_negative, which needs urgency high, not critical
        ("投诉专席", "P0", HUMAN, [r.value for r in Reason if r != "high_urgency_negative"]),
    ),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "context", "expected"), RULES, ids=[r[0] for r in RULES]
)
def test_routing_rule(policy, case, kwargs, context, expected):
    decision = decide(prediction(**kwargs), ConversationContext(**context), policy)
    queue, priority, action, reasons = expected
    assert (decision.queue, decision.priority, decision.action, decision.reasons) == (
        queue,
        priority,
        action,
        reasons,
    )
    assert decision.escalate is (action is HUMAN)
    assert all(isinstance(reason, Reason) for reason in decision.reasons)
    assert choose_action(decision.reasons) is decision.action


def test_clarify_offers_the_likely_intents_with_names(policy):
    decision = decide(
        prediction(abstain=("intent",), top=TOP_INTENTS), ConversationContext(), policy
    )
    assert decision == Decision(
        "物流组",
        "P2",
        CLARIFY,
        [Reason.LOW_CONFIDENCE],
        [
            Candidate("logistics_status", "物流查询", 0.45),
            Candidate("logistics_issue", "物流异常", 0.3),  # order_status is under 0.1
        ],
    )


def test_the_best_intent_is_offered_even_under_the_minimum(bundle, tmp_path):
    path = write_policy(tmp_path, "clarify: {max_candidates: 1, min_confidence: 0.9}\n")
    policy = RoutingPolicy.for_bundle(bundle, path)
    decision = decide(
        prediction(abstain=("intent",), top=TOP_INTENTS), ConversationContext(), policy
    )
    assert decision.candidates == [Candidate("logistics_status", "物流查询", 0.45)]


def test_only_clarify_carries_candidates(policy):
    human = decide(
        prediction(emotion="angry", abstain=("intent",), top=TOP_INTENTS),
        ConversationContext(),
        policy,
    )
    assert (human.action, human.candidates) == (HUMAN, [])


@pytest.mark.parametrize(
    ("labels", "asks", "expected"),
    [
        (("logistics_status", "medium", "neutral"), False, []),
        (("human_agent", "medium", "neutral"), False, ["human_requested"]),
        (("refund_return", "medium", "neutral"), True, ["human_requested"]),
        (("complaint", "critical", "angry"), False, ["complaint", "critical_urgency", "angry"]),
        (("payment", "high", "anxious"), False, ["high_urgency_negative"]),
    ],
)
def test_content_reasons_on_labels_alone(policy, labels, asks, expected):
    assert content_reasons(*labels, asks, policy) == expected


QUEUES = [
    ("product_info", "售前组"),
    ("payment", "订单支付组"),
    ("logistics_issue", "物流组"),
    ("invoice", "售后组"),
    ("account_security", "风控安全组"),
    ("complaint", "投诉专席"),
    ("greeting", "机器人自助"),
]


@pytest.mark.parametrize(("intent", "queue"), QUEUES)
def test_each_intent_group_maps_to_its_queue(policy, intent, queue):
    assert decide(prediction(intent), ConversationContext(), policy).queue == queue


def write_policy(tmp_path, text):
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def likely_urgent_and_upset():
    """Best labels medium / anxious, but urgency high is nearly as likely: P(high) x P(neg) 0.38."""
    guess = prediction(urgency="medium", emotion="anxious")
    guess.urgency.top = [("medium", 0.5), ("high", 0.45), ("low", 0.05)]
    guess.emotion.top = [("anxious", 0.6), ("dissatisfied", 0.25), ("neutral", 0.15)]
    return guess


def test_a_likely_urgent_and_upset_customer_goes_to_a_person(policy):
    decision = decide(likely_urgent_and_upset(), ConversationContext(), policy)
    assert decision.action is HUMAN
    assert decision.reasons == [Reason.HIGH_URGENCY_NEGATIVE]
    assert decision.priority == "P2"  # the priority still follows the best urgency label
    # the gold-label side of evaluation reads labels only: medium + anxious is not a hand-over
    assert content_reasons("logistics_status", "medium", "anxious", False, policy) == []


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
