"""The routing policy: every rule, its threshold and its reason code, validated once at start.

A policy is a YAML mapping. The default is the `routing:` section of `datasets/taxonomy.yaml`,
which training copies into each bundle as `policy.yaml`; a policy file given at serve or score
time (`--policy`, `KEFU_POLICY`) is laid over the bundle's, key by key (lists are replaced, not
merged), so it only needs the keys it changes. `DEFAULT_POLICY`, read from the packaged
taxonomy (not from `KEFU_TAXONOMY`: a custom taxonomy's policy reaches serving through the
bundle), fills keys a file leaves out.

Rules are keyed by the reason code they emit (`Reason` in `routing.py`); each may carry
`enabled: false`. Policies written before the three actions existed (flat keys such as
`escalate_intents`, `max_turns`) are still read: `policy_files.upgrade` maps each flat key to
its rule, and errors name the key as the file spells it.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from kefu.errors import PolicyError
from kefu.serving.bundle.reader import Bundle
from kefu.serving.policy_files import LEGACY_KEYS, merge_layer, read_policy_file, upgrade
from kefu.serving.routing import Reason
from kefu.serving.taxonomy import DEFAULT_TAXONOMY_PATH, PRIORITIES, Taxonomy, load_taxonomy

# The packaged taxonomy's `routing:` section: the rules are written once, in that file.
DEFAULT_POLICY: dict[str, Any] = load_taxonomy(DEFAULT_TAXONOMY_PATH).routing

# The parameters each rule takes, and what kind of value each is.
RULE_PARAMETERS: dict[Reason, dict[str, str]] = {
    Reason.HUMAN_REQUESTED: {"intents": "intent", "detect_in_text": "bool"},
    Reason.COMPLAINT: {"intents": "intent"},
    Reason.CRITICAL_URGENCY: {"urgency": "urgency"},
    Reason.ANGRY: {"emotions": "emotion"},
    Reason.HIGH_URGENCY_NEGATIVE: {
        "urgency": "urgency",
        "emotions": "emotion",
        "min_probability": "probability or null",
    },
    Reason.LONG_CONVERSATION: {"max_turns": "count", "ignore_intents": "intent"},
    Reason.REPEATED_INTENT: {"min_repeats": "count", "ignore_intents": "intent"},
    Reason.CLARIFICATION_FAILED: {
        "after_clarifications": "count",
        "after_abstained_turns": "count",
    },
    Reason.LOW_CONFIDENCE: {"heads": "head"},
}
TOP_LEVEL = ("rules", "clarify", "angry_priority", "group_queues")


@dataclass(frozen=True)
class RoutingPolicy:
    """A validated policy, flattened for `routing.decide`; `document` is the policy as resolved."""

    intent_groups: Mapping[str, str]
    group_queues: Mapping[str, str]
    urgency_priorities: Mapping[str, str]
    intent_names: Mapping[str, str]
    enabled: frozenset[Reason]
    human_request_intents: frozenset[str]
    human_request_in_text: bool
    complaint_intents: frozenset[str]
    critical_urgency: frozenset[str]
    angry_emotions: frozenset[str]
    high_urgency: frozenset[str]
    high_urgency_emotions: frozenset[str]
    high_urgency_min_probability: float | None  # None: the best labels alone decide
    max_turns: int
    long_ignore_intents: frozenset[str]  # a turn with one of these never counts as too long
    min_repeats: int
    repeat_ignore_intents: frozenset[str]
    after_clarifications: int
    after_abstained_turns: int
    low_confidence_heads: tuple[str, ...]
    max_candidates: int
    min_candidate_confidence: float
    angry_priority: str
    document: Mapping[str, Any]

    @classmethod
    def from_layers(
        cls,
        layers: Sequence[tuple[Mapping[str, Any], str]],
        *,
        labels: Mapping[str, Sequence[str]],
        intent_groups: Mapping[str, str],
        group_queues: Mapping[str, str],
        urgency_priorities: Mapping[str, str],
        intent_names: Mapping[str, str] | None = None,
    ) -> RoutingPolicy:
        """Lay (policy, source) layers over `DEFAULT_POLICY`, then validate against the labels.

        Errors name the source that set the offending value, the key and the value.
        """
        merged: dict[str, Any] = copy.deepcopy(DEFAULT_POLICY)
        origins: dict[str, tuple[str, str]] = {}  # key path -> (source, key as spelt there)
        for policy, source in layers:
            if not isinstance(policy, Mapping):
                raise PolicyError(f"{source}: expected a mapping of policy keys")
            upgraded, spelling = upgrade(policy, source)
            _check_keys(upgraded, source, spelling)
            merge_layer(merged, upgraded, source, spelling, origins, "")
        check = _Checker(merged, origins, labels)
        rules = {reason: check.rule(reason) for reason in Reason}
        clarify = check.mapping("clarify")
        unknown_groups = sorted(set(check.queues()) - set(intent_groups.values()))
        if unknown_groups:
            check.fail("group_queues", f"names unknown groups {unknown_groups}")
        queues = dict(group_queues) | check.queues()
        missing = set(intent_groups.values()) - set(queues)
        if missing:  # neither the bundle's taxonomy nor a layer names one: no source to blame
            raise PolicyError(
                f"no queue for groups {sorted(missing)}: neither the bundle's taxonomy nor the "
                f"policy ({', '.join(source for _, source in layers)}) names one; add them under "
                "group_queues"
            )
        return cls(
            intent_groups=dict(intent_groups),
            group_queues=queues,
            urgency_priorities=dict(urgency_priorities),
            intent_names=dict(intent_names or {}),
            enabled=frozenset(reason for reason, rule in rules.items() if rule["enabled"]),
            human_request_intents=rules[Reason.HUMAN_REQUESTED]["intents"],
            human_request_in_text=rules[Reason.HUMAN_REQUESTED]["detect_in_text"],
            complaint_intents=rules[Reason.COMPLAINT]["intents"],
            critical_urgency=rules[Reason.CRITICAL_URGENCY]["urgency"],
            angry_emotions=rules[Reason.ANGRY]["emotions"],
            high_urgency=rules[Reason.HIGH_URGENCY_NEGATIVE]["urgency"],
            high_urgency_emotions=rules[Reason.HIGH_URGENCY_NEGATIVE]["emotions"],
            high_urgency_min_probability=rules[Reason.HIGH_URGENCY_NEGATIVE]["min_probability"],
            max_turns=rules[Reason.LONG_CONVERSATION]["max_turns"],
            long_ignore_intents=rules[Reason.LONG_CONVERSATION]["ignore_intents"],
            min_repeats=rules[Reason.REPEATED_INTENT]["min_repeats"],
            repeat_ignore_intents=rules[Reason.REPEATED_INTENT]["ignore_intents"],
            after_clarifications=rules[Reason.CLARIFICATION_FAILED]["after_clarifications"],
            after_abstained_turns=rules[Reason.CLARIFICATION_FAILED]["after_abstained_turns"],
            low_confidence_heads=tuple(sorted(rules[Reason.LOW_CONFIDENCE]["heads"])),
            max_candidates=check.count("clarify.max_candidates", clarify.get("max_candidates")),
            min_candidate_confidence=check.probability(
                "clarify.min_confidence", clarify.get("min_confidence")
            ),
            angry_priority=check.priority("angry_priority", merged.get("angry_priority")),
            document=merged,
        )

    @classmethod
    def for_bundle(cls, bundle: Bundle, override_path: str | Path | None = None) -> RoutingPolicy:
        """The bundle's policy, with a policy file given at serve or score time laid over it."""
        if not isinstance(bundle, Bundle):
            hint = (
                "classifier.bundle"
                if hasattr(bundle, "bundle")
                else "read_bundle(path) or classifier.bundle"
            )
            raise TypeError(
                f"RoutingPolicy.for_bundle takes a loaded Bundle ({hint}), got "
                f"{type(bundle).__name__}"
            )
        if override_path is not None and not isinstance(override_path, str | os.PathLike):
            raise TypeError(
                "override_path must be the path of a YAML policy file, got "
                f"{type(override_path).__name__}"
            )
        layers: list[tuple[Mapping[str, Any], str]] = [
            (bundle.policy, f"{bundle.path}/policy.yaml")
        ]
        if override_path:
            layers.append((read_policy_file(override_path), str(override_path)))
        return cls.from_layers(
            layers,
            labels=bundle.labels,
            intent_groups=bundle.intent_groups,
            group_queues=bundle.group_queues,
            urgency_priorities=bundle.urgency_priorities,
            intent_names=bundle.label_names.get("intent", {}),
        )

    @classmethod
    def for_taxonomy(cls, taxonomy: Taxonomy) -> RoutingPolicy:
        """The taxonomy's default policy, the one a new bundle ships: for routing labels that
        no bundle produced (annotations, gold test labels)."""
        return cls.from_layers(
            [(taxonomy.routing, "taxonomy")],
            labels=taxonomy.head_labels(),
            intent_groups=taxonomy.intent_groups(),
            group_queues=taxonomy.group_queues(),
            urgency_priorities=taxonomy.urgency_priorities(),
        )

    def describe(self) -> dict[str, Any]:
        """The policy in effect, as a policy file would spell it (for GET /v1/model)."""
        return copy.deepcopy(dict(self.document))


def _check_keys(policy: Mapping[str, Any], source: str, spelling: Mapping[str, str]) -> None:
    unknown = sorted(set(policy) - set(TOP_LEVEL), key=str)  # YAML keys may be numbers
    if unknown:
        allowed = sorted({*TOP_LEVEL, *LEGACY_KEYS, "escalate_intents"})
        raise PolicyError(f"{source}: unknown keys {unknown}; allowed: {allowed}")
    rules = policy.get("rules", {})
    if not isinstance(rules, Mapping):
        raise PolicyError(f"{source}: rules must be a mapping of reason code to rule")
    for name, rule in rules.items():
        if name not in set(Reason):
            raise PolicyError(
                f"{source}: rules.{name} is not a reason code; the codes are "
                f"{[reason.value for reason in Reason]}"
            )
        if not isinstance(rule, Mapping):
            raise PolicyError(
                f"{source}: rules.{name} must be a mapping of its keys, e.g. "
                f"{{enabled: false}} to switch it off, got {rule!r}"
            )
        parameters = {*RULE_PARAMETERS[Reason(name)], "enabled"}
        extra = sorted(set(rule) - parameters, key=str)
        if extra:
            raise PolicyError(
                f"{source}: rules.{name} has unknown keys {extra}; allowed: {sorted(parameters)}"
            )
    clarify = policy.get("clarify", {})
    if not isinstance(clarify, Mapping) or set(clarify) - {"max_candidates", "min_confidence"}:
        raise PolicyError(
            f"{source}: clarify takes max_candidates and min_confidence, got {clarify!r}"
        )


class _Checker:
    """Reads typed values out of the merged policy; errors name the source, key and value."""

    def __init__(
        self,
        merged: Mapping[str, Any],
        origins: Mapping[str, tuple[str, str]],
        labels: Mapping[str, Sequence[str]],
    ):
        self.merged, self.origins, self.labels = merged, origins, labels

    def fail(self, path: str, message: str) -> NoReturn:
        source, spelt = self.origins.get(path, ("default policy", path))
        raise PolicyError(f"{source}: {spelt} {message}")

    def mapping(self, key: str) -> Mapping[str, Any]:
        return self.merged.get(key) or {}

    def rule(self, reason: Reason) -> dict[str, Any]:
        raw = self.mapping("rules").get(reason.value) or {}
        path = f"rules.{reason.value}"
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            self.fail(f"{path}.enabled", f"must be true or false, got {enabled!r}")
        out: dict[str, Any] = {"enabled": enabled}
        for name, kind in RULE_PARAMETERS[reason].items():
            value, where = raw.get(name), f"{path}.{name}"
            if kind == "bool":
                if not isinstance(value, bool):
                    self.fail(where, f"must be true or false, got {value!r}")
                out[name] = value
            elif kind == "count":
                out[name] = self.count(where, value)
            elif kind == "probability or null":
                out[name] = None if value is None else self.probability(where, value)
            else:
                out[name] = self.ids(where, value, kind)
        return out

    def ids(self, path: str, value: Any, kind: str) -> frozenset[str]:
        known = list(self.labels) if kind == "head" else list(self.labels[kind])
        noun = "head names" if kind == "head" else f"{kind} ids"
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(path, f"must be a list of {noun}, got {value!r}")
        bad = [v for v in value if v not in known]
        if bad:
            self.fail(path, f"has unknown {noun} {bad}; known: {known}")
        return frozenset(value)

    def count(self, path: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.fail(path, f"must be an integer >= 1, got {value!r}")
        return value

    def probability(self, path: str, value: Any) -> float:
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number) or not 0 <= number <= 1:
            self.fail(path, f"must be a number from 0 to 1, got {value!r}")
        return float(value)

    def priority(self, path: str, value: Any) -> str:
        if value not in PRIORITIES:
            self.fail(path, f"must be one of {list(PRIORITIES)}, got {value!r}")
        return value

    def queues(self) -> dict[str, str]:
        value = self.merged.get("group_queues") or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
        ):
            self.fail("group_queues", f"must map group ids to queue names, got {value!r}")
        return dict(value)
