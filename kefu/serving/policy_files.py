"""Policy files as written: YAML read with errors naming the file, the first format's flat
keys upgraded to rules, and layers laid over each other key by key.

Separate from `routing_policy.py`, which validates the merged result: this module only turns
files into one mapping, so a new spelling of a file never touches the rules themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import PolicyError

BUNDLE_SOURCE = "bundle"  # the source of a policy read from the bundle's policy.yaml alone

# Flat keys of the first policy format -> (rule, parameter) of this one.
LEGACY_KEYS = {
    "escalate_urgency": ("critical_urgency", "urgency"),
    "escalate_emotions": ("angry", "emotions"),
    "high_urgency_negative_emotions": ("high_urgency_negative", "emotions"),
    "max_turns": ("long_conversation", "max_turns"),
    "repeated_intent_count": ("repeated_intent", "min_repeats"),
    "low_confidence_heads": ("low_confidence", "heads"),
}


def policy_source(path: str | Path | None) -> str:
    """How the policy in effect is named where it is shown (`GET /v1/model`, evaluation's
    routing blocks): the file laid over the bundle's, by its name only (a path would tell a
    server's layout or a workstation's folders), or "bundle" when none was given."""
    return Path(path).name if path else BUNDLE_SOURCE


class _RepeatedKey(Exception):
    """A key written twice in one mapping of a policy file (`_UniqueKeyLoader`)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping: YAML keeps the last, so
    a second `rules:` (a rule added at the end of a file) would drop every rule of the first
    without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # a `<<` merge overrides on purpose; other keys are refused by YAML
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise _RepeatedKey(
                    f"line {line}: key {key!r} is written twice in one mapping (first on line "
                    f"{first_lines[key]}); YAML would keep only the last, so write it once"
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def read_policy_file(path: str | Path) -> Mapping[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
        policy = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:  # a directory, no permission
        raise PolicyError(f"policy file {path} cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:  # yaml's message spans lines: one line, as every error
        raise PolicyError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    except _RepeatedKey as exc:
        raise PolicyError(f"{path}: {exc}") from None
    if not isinstance(policy, dict):
        raise PolicyError(f"{path}: expected a mapping of policy keys")
    return policy


def upgrade(policy: Mapping[str, Any], source: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A first-format policy (flat keys) in this format, and how the file spelt each key path."""
    legacy = [key for key in policy if key in LEGACY_KEYS or key == "escalate_intents"]
    if not legacy:
        return dict(policy), {}
    if "rules" in policy:
        raise PolicyError(
            f"{source}: mixes the flat keys {sorted(legacy)} of the first policy format with "
            "'rules'; move them under rules (see the README, Routing)"
        )
    upgraded: dict[str, Any] = {k: v for k, v in policy.items() if k not in legacy}
    rules: dict[str, dict[str, Any]] = {}
    spelling: dict[str, str] = {}
    for key in legacy:
        value = policy[key]
        if key == "escalate_intents":  # human_agent was always honoured; the rest are complaints
            if isinstance(value, list):
                value = [intent for intent in value if intent != "human_agent"]
            rule, parameter = "complaint", "intents"
        else:
            rule, parameter = LEGACY_KEYS[key]
        rules.setdefault(rule, {})[parameter] = value
        spelling[f"rules.{rule}.{parameter}"] = key
    upgraded["rules"] = rules
    return upgraded, spelling


def merge_layer(
    into: dict[str, Any],
    layer: Mapping[str, Any],
    source: str,
    spelling: Mapping[str, str],
    origins: dict[str, tuple[str, str]],
    prefix: str,
) -> None:
    for key, value in layer.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict) and key != "group_queues":
            merge_layer(into[key], value, source, spelling, origins, f"{path}.")
        else:
            into[key] = copy.deepcopy(value)
            origins[path] = (source, spelling.get(path, path))
