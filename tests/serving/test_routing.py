"""One table row per routing rule of spec/taxonomy.md ("Routing"): action, reasons, priority;
the queue of each intent group and the intents a clarification offers."""

import pytest
from support.routing import (
    BOT,
    CLARIFY,
    HUMAN,
    TOP_INTENTS,
    likely_urgent_and_upset,
    prediction,
    write_policy,
)

from kefu.serving.routing import (
    Candidate,
    ConversationContext,
    Decision,
    Reason,
    choose_action,
    content_reasons,
    decide,
)
from kefu.serving.routing_policy import RoutingPolicy

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


def test_a_likely_urgent_and_upset_customer_goes_to_a_person(policy):
    decision = decide(likely_urgent_and_upset(), ConversationContext(), policy)
    assert decision.action is HUMAN
    assert decision.reasons == [Reason.HIGH_URGENCY_NEGATIVE]
    assert decision.priority == "P2"  # the priority still follows the best urgency label
    # the gold-label side of evaluation reads labels only: medium + anxious is not a hand-over
    assert content_reasons("logistics_status", "medium", "anxious", False, policy) == []
