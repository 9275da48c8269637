"""Routing: which queue, what priority, whether to escalate and why.

`decide(prediction, context, policy)` is a pure function of the model's prediction, the
conversation context the caller sends (no server-side state) and a validated policy.
Reasons are stable machine-readable codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import PolicyError
from kefu.serving.classifier import Prediction
from kefu.serving.taxonomy import PRIORITIES

REASONS = (
    "human_requested",
    "complaint",
    "critical_urgency",
    "angry",
    "high_urgency_negative",
    "low_confidence",
    "long_conversation",
    "repeated_intent",
)


@dataclass(frozen=True)
class ConversationContext:
    turn: int | None = None  # customer turn number of this message, 1-based
    previous_intents: Sequence[str] = ()


@dataclass(frozen=True)
class Decision:
    queue: str
    priority: str
    escalate: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RoutingPolicy:
    intent_groups: Mapping[str, str]
    group_queues: Mapping[str, str]
    urgency_priorities: Mapping[str, str]
    escalate_intents: frozenset[str]
    escalate_urgency: frozenset[str]
    escalate_emotions: frozenset[str]
    high_urgency_negative_emotions: frozenset[str]
    max_turns: int
    repeated_intent_count: int
    angry_priority: str
    low_confidence_heads: tuple[str, ...] = ("intent",)

    @classmethod
    def from_mapping(
        cls,
        policy: Mapping[str, Any],
        *,
        labels: Mapping[str, Sequence[str]],
        intent_groups: Mapping[str, str],
        group_queues: Mapping[str, str],
        urgency_priorities: Mapping[str, str],
        source: str = "policy",
    ) -> RoutingPolicy:
        """Validate a policy against the bundle's labels; errors name the key and the value."""
        known = {
            "escalate_intents": "intent",
            "escalate_urgency": "urgency",
            "escalate_emotions": "emotion",
            "high_urgency_negative_emotions": "emotion",
        }
        allowed = set(known) | {
            "max_turns",
            "repeated_intent_count",
            "angry_priority",
            "low_confidence_heads",
            "group_queues",
        }
        unknown = set(policy) - allowed
        if unknown:
            raise PolicyError(
                f"{source}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        sets: dict[str, frozenset[str]] = {}
        for key, head in known.items():
            values = policy.get(key, [])
            if not isinstance(values, list):
                raise PolicyError(f"{source}: {key} must be a list of {head} ids, got {values!r}")
            bad = [v for v in values if v not in labels[head]]
            if bad:
                raise PolicyError(f"{source}: {key} has unknown {head} ids {bad}")
            sets[key] = frozenset(values)
        numbers = {}
        for key, default in (("max_turns", 3), ("repeated_intent_count", 1)):
            value = policy.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PolicyError(f"{source}: {key} must be an integer >= 1, got {value!r}")
            numbers[key] = value
        angry_priority = policy.get("angry_priority", "P1")
        if angry_priority not in PRIORITIES:
            raise PolicyError(
                f"{source}: angry_priority must be one of {PRIORITIES}, got {angry_priority!r}"
            )
        heads = tuple(policy.get("low_confidence_heads", ["intent"]))
        if not set(heads) <= set(labels):
            raise PolicyError(
                f"{source}: low_confidence_heads must be head names, got {list(heads)}"
            )
        queues = dict(group_queues) | dict(policy.get("group_queues", {}) or {})
        missing = set(intent_groups.values()) - set(queues)
        if missing:
            raise PolicyError(f"{source}: no queue for groups {sorted(missing)}")
        return cls(
            intent_groups=dict(intent_groups),
            group_queues=queues,
            urgency_priorities=dict(urgency_priorities),
            escalate_intents=sets["escalate_intents"],
            escalate_urgency=sets["escalate_urgency"],
            escalate_emotions=sets["escalate_emotions"],
            high_urgency_negative_emotions=sets["high_urgency_negative_emotions"],
            max_turns=numbers["max_turns"],
            repeated_intent_count=numbers["repeated_intent_count"],
            angry_priority=angry_priority,
            low_confidence_heads=heads,
        )

    @classmethod
    def for_bundle(cls, bundle, override_path: str | Path | None = None) -> RoutingPolicy:
        """The bundle's policy, or a policy file given at serve time, validated."""
        policy, source = bundle.policy, f"{bundle.path}/policy.yaml"
        if override_path:
            source = str(override_path)
            try:
                policy = yaml.safe_load(Path(override_path).read_text(encoding="utf-8")) or {}
            except FileNotFoundError:
                raise PolicyError(f"policy file {override_path} does not exist") from None
            except yaml.YAMLError as exc:
                raise PolicyError(f"{override_path} is not valid YAML: {exc}") from None
            if not isinstance(policy, dict):
                raise PolicyError(f"{override_path}: expected a mapping of policy keys")
        return cls.from_mapping(
            policy,
            labels=bundle.labels,
            intent_groups=bundle.intent_groups,
            group_queues=bundle.group_queues,
            urgency_priorities=bundle.urgency_priorities,
            source=source,
        )


def decide(prediction: Prediction, context: ConversationContext, policy: RoutingPolicy) -> Decision:
    intent, urgency, emotion = (
        prediction.intent.label,
        prediction.urgency.label,
        prediction.emotion.label,
    )
    reasons: list[str] = []
    if prediction.asks_for_human or intent == "human_agent":
        reasons.append("human_requested")
    if intent in policy.escalate_intents and intent != "human_agent":
        reasons.append("complaint" if intent == "complaint" else f"intent_{intent}")
    if urgency in policy.escalate_urgency:
        reasons.append("critical_urgency")
    if emotion in policy.escalate_emotions:
        reasons.append("angry")
    if urgency == "high" and emotion in policy.high_urgency_negative_emotions:
        reasons.append("high_urgency_negative")
    if any(prediction.heads[head].abstain for head in policy.low_confidence_heads):
        reasons.append("low_confidence")
    if context.turn is not None and context.turn > policy.max_turns:
        reasons.append("long_conversation")
    if list(context.previous_intents).count(intent) >= policy.repeated_intent_count:
        reasons.append("repeated_intent")
    priority = policy.urgency_priorities.get(urgency, "P3")
    if emotion == "angry":
        priority = min(
            priority, policy.angry_priority
        )  # "P0" < "P1": lower string, higher priority
    return Decision(
        queue=policy.group_queues[policy.intent_groups[intent]],
        priority=priority,
        escalate=bool(reasons),
        reasons=reasons,
    )
