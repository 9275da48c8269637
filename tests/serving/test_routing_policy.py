"""The routing policy file: defaults, overrides, the first (flat) format, and errors that name
the key and the value."""

import re

import pytest
import yaml
from support.routing import BOT, HUMAN, prediction, write_policy

from kefu.errors import PolicyError
from kefu.serving.routing import ConversationContext, Reason, decide
from kefu.serving.routing_policy import DEFAULT_POLICY, RULE_PARAMETERS, TOP_LEVEL, RoutingPolicy
from kefu.serving.taxonomy import DEFAULT_TAXONOMY_PATH


def test_the_taxonomy_routing_section_names_every_rule_and_is_a_valid_policy():
    section = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text(encoding="utf-8"))["routing"]
    assert set(section["rules"]) == {reason.value for reason in Reason} == set(RULE_PARAMETERS)
    assert set(section) <= set(TOP_LEVEL)


def test_the_bundle_carries_the_default_policy(bundle, policy):
    assert bundle.policy == DEFAULT_POLICY
    assert policy.describe() == DEFAULT_POLICY
    assert policy.enabled == frozenset(Reason)
    assert (policy.max_turns, policy.max_candidates, policy.min_candidate_confidence) == (3, 3, 0.1)


# The defaults as the README's routing table lists them ("policy keys (default)").
DOCUMENTED_DEFAULTS = {
    "rules": {
        "human_requested": {"intents": ["human_agent"], "detect_in_text": True},
        "complaint": {"intents": ["complaint"]},
        "critical_urgency": {"urgency": ["critical"]},
        "angry": {"emotions": ["angry"]},
        "high_urgency_negative": {
            "urgency": ["high"],
            "emotions": ["anxious", "dissatisfied"],
            "min_probability": 0.10,
        },
        "low_confidence": {"heads": ["intent"]},
        "long_conversation": {"max_turns": 3, "ignore_intents": ["greeting"]},
        "repeated_intent": {"min_repeats": 1, "ignore_intents": ["greeting"]},
        "clarification_failed": {"after_clarifications": 1, "after_abstained_turns": 1},
    },
    "clarify": {"max_candidates": 3, "min_confidence": 0.1},
    "angry_priority": "P1",
}


def test_the_default_policy_is_the_documented_one():
    assert DEFAULT_POLICY == DOCUMENTED_DEFAULTS


def test_a_policy_file_is_laid_over_the_bundle_policy_key_by_key(bundle, tmp_path):
    path = write_policy(
        tmp_path,
        "rules:\n"
        "  long_conversation: {max_turns: 5}\n"
        "  angry: {emotions: [angry, dissatisfied]}\n"
        "  complaint: {enabled: false}\n",
    )
    policy = RoutingPolicy.for_bundle(bundle, path)
    assert (policy.max_turns, policy.angry_emotions) == (5, {"angry", "dissatisfied"})
    assert Reason.COMPLAINT not in policy.enabled
    assert policy.complaint_intents == {"complaint"}  # kept from the bundle, only switched off
    assert (
        policy.describe()["rules"]["repeated_intent"] == DEFAULT_POLICY["rules"]["repeated_intent"]
    )
    dissatisfied = decide(prediction(emotion="dissatisfied"), ConversationContext(turn=5), policy)
    assert (dissatisfied.action, dissatisfied.reasons) == (HUMAN, ["angry"])
    assert dissatisfied.priority == "P1"  # angry by this policy: raised from medium's P2
    complaint = decide(prediction("complaint"), ConversationContext(), policy)
    assert (complaint.action, complaint.reasons) == (BOT, [])


def test_a_first_format_policy_is_still_read(bundle, tmp_path):
    path = write_policy(
        tmp_path,
        "escalate_intents: [human_agent, complaint, counterfeit]\n"
        "escalate_emotions: [angry, dissatisfied]\n"
        "max_turns: 10\n"
        "repeated_intent_count: 2\n"
        "low_confidence_heads: [intent, urgency]\n"
        "angry_priority: P0\n",
    )
    policy = RoutingPolicy.for_bundle(bundle, path)
    assert policy.complaint_intents == {"complaint", "counterfeit"}
    assert policy.human_request_intents == {"human_agent"}
    assert (policy.angry_emotions, policy.max_turns, policy.min_repeats) == (
        {"angry", "dissatisfied"},
        10,
        2,
    )
    assert (policy.low_confidence_heads, policy.angry_priority) == (("intent", "urgency"), "P0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_turn: 3\n", "unknown keys ['max_turn']"),
        ("rules: {very_angry: {}}\n", "rules.very_angry is not a reason code"),
        ("rules: {angry: {emotion: [angry]}}\n", "rules.angry has unknown keys ['emotion']"),
        (
            "rules: {complaint: {intents: [complaint, refund]}}\n",
            "rules.complaint.intents has unknown intent ids ['refund']",
        ),
        (
            "rules: {angry: {emotions: angry}}\n",
            "rules.angry.emotions must be a list of emotion ids, got 'angry'",
        ),
        (
            "rules: {long_conversation: {max_turns: 0}}\n",
            "rules.long_conversation.max_turns must be an integer >= 1, got 0",
        ),
        (
            "rules: {long_conversation: {ignore_intents: [thanks]}}\n",
            "rules.long_conversation.ignore_intents has unknown intent ids ['thanks']",
        ),
        (
            "rules: {repeated_intent: {enabled: 'no'}}\n",
            "rules.repeated_intent.enabled must be true or false, got 'no'",
        ),
        (
            "rules: {human_requested: {detect_in_text: 1}}\n",
            "rules.human_requested.detect_in_text must be true or false, got 1",
        ),
        (
            "rules: {low_confidence: {heads: [sentiment]}}\n",
            "rules.low_confidence.heads has unknown head names ['sentiment']",
        ),
        (
            "rules: {high_urgency_negative: {min_probability: 2}}\n",
            "rules.high_urgency_negative.min_probability must be a number from 0 to 1, got 2",
        ),
        (
            "clarify: {min_confidence: 1.5}\n",
            "clarify.min_confidence must be a number from 0 to 1, got 1.5",
        ),
        ("clarify: {max_candidates: 0}\n", "clarify.max_candidates must be an integer >= 1, got 0"),
        ("clarify: {top: 3}\n", "clarify takes max_candidates and min_confidence"),
        (
            "angry_priority: P5\n",
            "angry_priority must be one of ['P0', 'P1', 'P2', 'P3'], got 'P5'",
        ),
        ("group_queues: {vip: VIP组}\n", "group_queues names unknown groups ['vip']"),
        (
            "group_queues: {general: ''}\n",
            "group_queues must map group ids to queue names, got {'general': ''}",
        ),
        (
            "rules: {repeated_intent: {min_repeats: true}}\n",
            "rules.repeated_intent.min_repeats must be an integer >= 1, got True",
        ),
        (
            "clarify: {min_confidence: true}\n",
            "clarify.min_confidence must be a number from 0 to 1, got True",
        ),
        # the first format: errors name the key as the file spells it
        (
            "escalate_intents: [complaint, refund]\n",
            "escalate_intents has unknown intent ids ['refund']",
        ),
        (
            "escalate_emotions: angry\n",
            "escalate_emotions must be a list of emotion ids, got 'angry'",
        ),
        ("max_turns: 0\n", "max_turns must be an integer >= 1, got 0"),
        ("max_turns: 5\nrules: {}\n", "mixes the flat keys ['max_turns']"),
        ("- a\n- b\n", "expected a mapping of policy keys"),
        ("max_turns: [\n", "is not valid YAML"),
        # YAML keeps a repeated key's last value: the first rules: would be dropped unseen
        (
            "rules: {complaint: {enabled: false}}\nclarify: {}\nrules: {angry: {enabled: false}}\n",
            "line 3: key 'rules' is written twice in one mapping (first on line 1)",
        ),
        (
            "rules:\n  long_conversation:\n    max_turns: 5\n    max_turns: 7\n",
            "line 4: key 'max_turns' is written twice in one mapping (first on line 3)",
        ),
        ("1: a\nfoo: b\n", "unknown keys [1, 'foo']"),
        (
            "rules: {complaint: false}\n",
            "rules.complaint must be a mapping of its keys, e.g. {enabled: false} to switch it "
            "off, got False",
        ),
        ("rules: {angry: {1: x, emotion: y}}\n", "rules.angry has unknown keys [1, 'emotion']"),
    ],
)
def test_bad_policy_names_the_file_the_key_and_the_value(bundle, tmp_path, text, message):
    path = write_policy(tmp_path, text)
    with pytest.raises(PolicyError, match=re.escape(message)) as caught:
        RoutingPolicy.for_bundle(bundle, path)
    assert str(path) in str(caught.value)


def test_a_yaml_merge_key_may_be_overridden_in_its_mapping(bundle, tmp_path):
    text = "rules:\n  long_conversation:\n    <<: {max_turns: 5}\n    max_turns: 7\n"
    assert RoutingPolicy.for_bundle(bundle, write_policy(tmp_path, text)).max_turns == 7


@pytest.mark.parametrize("value", [0, 1])
def test_a_probability_may_be_either_end_of_its_range(bundle, tmp_path, value):
    path = write_policy(
        tmp_path,
        f"rules: {{high_urgency_negative: {{min_probability: {value}}}}}\n"
        f"clarify: {{min_confidence: {value}}}\n",
    )
    policy = RoutingPolicy.for_bundle(bundle, path)
    assert (policy.high_urgency_min_probability, policy.min_candidate_confidence) == (value, value)


def test_every_group_needs_a_queue_from_the_bundle_or_the_policy(bundle):
    """A group with no queue would leave its intents nowhere to go: named when the policy is
    built, not as a KeyError on the first message."""
    queues = {group: queue for group, queue in bundle.group_queues.items() if group != "general"}

    def build(*layers):
        return RoutingPolicy.from_layers(
            [(bundle.policy, "bundle"), *layers],
            labels=bundle.labels,
            intent_groups=bundle.intent_groups,
            group_queues=queues,
            urgency_priorities=bundle.urgency_priorities,
        )

    with pytest.raises(PolicyError) as refused:
        build()
    assert str(refused.value) == (
        "no queue for groups ['general']: neither the bundle's taxonomy nor the policy (bundle) "
        "names one; add them under group_queues"
    )
    policy = build(({"group_queues": {"general": "在线客服"}}, "f"))
    assert policy.group_queues == queues | {"general": "在线客服"}


def test_missing_policy_file_is_named(bundle, tmp_path):
    with pytest.raises(PolicyError, match="policy file .*nope.yaml does not exist"):
        RoutingPolicy.for_bundle(bundle, tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("classifier", "takes a loaded Bundle (classifier.bundle), got Classifier"),
        ("path", "takes a loaded Bundle (read_bundle(path) or classifier.bundle), got PosixPath"),
    ],
)
def test_what_is_not_a_bundle_is_named(tiny_bundle, given, message):
    from kefu.serving.classifier import Classifier

    wrong = Classifier.from_bundle(tiny_bundle) if given == "classifier" else tiny_bundle
    with pytest.raises(TypeError, match=re.escape(message)):
        RoutingPolicy.for_bundle(wrong)


def test_a_policy_given_as_a_mapping_is_not_taken_for_a_path(bundle):
    with pytest.raises(TypeError, match="override_path must be the path of a YAML policy file"):
        RoutingPolicy.for_bundle(bundle, {"rules": {}})
