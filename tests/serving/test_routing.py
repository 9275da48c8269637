"""One table row per routing rule of spec/taxonomy.md ("Routing"), plus policy validation."""

import pytest

from kefu.errors import PolicyError
from kefu.serving.bundle import read_bundle
from kefu.serving.classifier import HeadPrediction, Prediction
from kefu.serving.routing import ConversationContext, Decision, RoutingPolicy, decide


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return read_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def policy(bundle):
    return RoutingPolicy.for_bundle(bundle)


def prediction(
    intent="logistics_status",
    urgency="medium",
    emotion="neutral",
    *,
    group=None,
    abstain=(),
    asks_for_human=False,
    groups=None,
):
    heads = {
        head: HeadPrediction(label, label, 0.9, head in abstain, [(label, 0.9)])
        for head, label in (("intent", intent), ("urgency", urgency), ("emotion", emotion))
    }
    return Prediction(heads=heads, group=group or "", asks_for_human=asks_for_human)


# (case, prediction kwargs, context, expected decision) - queue, priority, escalate, reasons
RULES = [
    ("plain request: no escalation", {}, {}, Decision("物流组", "P2", False, [])),
    (
        "intent human_agent",
        {"intent": "human_agent"},
        {},
        Decision("投诉专席", "P2", True, ["human_requested"]),
    ),
    (
        "concrete request that also asks for a human",
        {"intent": "refund_return", "asks_for_human": True},
        {},
        Decision("售后组", "P2", True, ["human_requested"]),
    ),
    (
        "intent complaint",
        {"intent": "complaint"},
        {},
        Decision("投诉专席", "P2", True, ["complaint"]),
    ),
    (
        "urgency critical",
        {"urgency": "critical"},
        {},
        Decision("物流组", "P0", True, ["critical_urgency"]),
    ),
    (
        "emotion angry raises low urgency to P1",
        {"urgency": "low", "emotion": "angry"},
        {},
        Decision("物流组", "P1", True, ["angry"]),
    ),
    (
        "angry keeps the higher P0",
        {"urgency": "critical", "emotion": "angry"},
        {},
        Decision("物流组", "P0", True, ["critical_urgency", "angry"]),
    ),
    (
        "high urgency + anxious",
        {"urgency": "high", "emotion": "anxious"},
        {},
        Decision("物流组", "P1", True, ["high_urgency_negative"]),
    ),
    (
        "high urgency + dissatisfied",
        {"urgency": "high", "emotion": "dissatisfied"},
        {},
        Decision("物流组", "P1", True, ["high_urgency_negative"]),
    ),
    (
        "high urgency + neutral: no escalation",
        {"urgency": "high"},
        {},
        Decision("物流组", "P1", False, []),
    ),
    (
        "medium urgency + anxious: no escalation",
        {"emotion": "anxious"},
        {},
        Decision("物流组", "P2", False, []),
    ),
    (
        "intent not confident",
        {"abstain": ("intent",)},
        {},
        Decision("物流组", "P2", True, ["low_confidence"]),
    ),
    (
        "only urgency not confident: intent rule only",
        {"abstain": ("urgency",)},
        {},
        Decision("物流组", "P2", False, []),
    ),
    (
        "more than 3 customer turns",
        {},
        {"turn": 4},
        Decision("物流组", "P2", True, ["long_conversation"]),
    ),
    ("3 customer turns: not yet long", {}, {"turn": 3}, Decision("物流组", "P2", False, [])),
    (
        "same intent as an earlier turn",
        {},
        {"previous_intents": ("order_status", "logistics_status")},
        Decision("物流组", "P2", True, ["repeated_intent"]),
    ),
    (
        "earlier turns had other intents",
        {},
        {"previous_intents": ("order_status",)},
        Decision("物流组", "P2", False, []),
    ),
    ("priority low -> P3", {"urgency": "low"}, {}, Decision("物流组", "P3", False, [])),
    (
        "every reason at once",
        {
            "intent": "complaint",
            "urgency": "critical",
            "emotion": "angry",
            "abstain": ("intent",),
            "asks_for_human": True,
        },
        {"turn": 9, "previous_intents": ("complaint",)},
        Decision(
            "投诉专席",
            "P0",
            True,
            [
                "human_requested",
                "complaint",
                "critical_urgency",
                "angry",
                "low_confidence",
                "long_conversation",
                "repeated_intent",
            ],
        ),
    ),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "context", "expected"), RULES, ids=[r[0] for r in RULES]
)
def test_routing_rule(policy, case, kwargs, context, expected):
    assert decide(prediction(**kwargs), ConversationContext(**context), policy) == expected


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


def test_policy_file_overrides_the_bundle_policy(bundle, tmp_path):
    path = write_policy(tmp_path, "max_turns: 5\nescalate_emotions: [angry, dissatisfied]\n")
    policy = RoutingPolicy.for_bundle(bundle, path)
    context = ConversationContext(turn=5)
    assert decide(prediction(emotion="dissatisfied"), context, policy) == Decision(
        "物流组", "P2", True, ["angry"]
    )
    assert policy.max_turns == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_turn: 3\n", "unknown keys ['max_turn']"),
        (
            "escalate_intents: [complaint, refund]\n",
            "escalate_intents has unknown intent ids ['refund']",
        ),
        (
            "escalate_emotions: angry\n",
            "escalate_emotions must be a list of emotion ids, got 'angry'",
        ),
        ("max_turns: 0\n", "max_turns must be an integer >= 1, got 0"),
        ("angry_priority: P5\n", "angry_priority must be one of"),
        ("low_confidence_heads: [sentiment]\n", "low_confidence_heads must be head names"),
        ("- a\n- b\n", "expected a mapping of policy keys"),
        ("max_turns: [\n", "is not valid YAML"),
    ],
)
def test_bad_policy_names_the_problem(bundle, tmp_path, text, message):
    path = write_policy(tmp_path, text)
    with pytest.raises(
        PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")
    ) as caught:
        RoutingPolicy.for_bundle(bundle, path)
    assert str(path) in str(caught.value)


def test_missing_policy_file_is_named(bundle, tmp_path):
    with pytest.raises(PolicyError, match="policy file .*nope.yaml does not exist"):
        RoutingPolicy.for_bundle(bundle, tmp_path / "nope.yaml")
