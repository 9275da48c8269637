"""The label taxonomy, read from `datasets/taxonomy.yaml`, the one place labels are written.

The file ships inside the package (`kefu/serving/taxonomy.yaml` links to it in the checkout and
is copied into wheels), so an installed kefu finds it without a checkout; `KEFU_TAXONOMY`
points elsewhere. Training copies the ordered ids into each bundle; serving decodes with the
bundle's copy, so a model keeps working even if the taxonomy moves on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import DataError

HEADS: tuple[str, ...] = ("intent", "urgency", "emotion")
PRIORITIES: tuple[str, ...] = ("P0", "P1", "P2", "P3")
DEFAULT_TAXONOMY_PATH = Path(__file__).with_name("taxonomy.yaml")


@dataclass(frozen=True)
class Label:
    id: str
    name: str
    description: str = ""
    group: str | None = None  # intents only
    priority: str | None = None  # urgency levels only


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    queue: str


@dataclass(frozen=True)
class Taxonomy:
    version: int
    groups: tuple[Group, ...]
    intents: tuple[Label, ...]
    urgency: tuple[Label, ...]  # ordered low -> critical
    emotion: tuple[Label, ...]
    routing: dict[str, Any] = field(default_factory=dict)

    def labels(self, head: str) -> tuple[str, ...]:
        """Ordered label ids of one head: the order of the model's output units."""
        return tuple(label.id for label in self._head(head))

    def names(self, head: str) -> dict[str, str]:
        return {label.id: label.name for label in self._head(head)}

    def head_labels(self) -> dict[str, tuple[str, ...]]:
        return {head: self.labels(head) for head in HEADS}

    def intent_groups(self) -> dict[str, str]:
        return {label.id: label.group or "" for label in self.intents}

    def group_queues(self) -> dict[str, str]:
        return {group.id: group.queue for group in self.groups}

    def urgency_priorities(self) -> dict[str, str]:
        return {label.id: label.priority or "" for label in self.urgency}

    def _head(self, head: str) -> tuple[Label, ...]:
        if head == "intent":
            return self.intents
        if head in ("urgency", "emotion"):
            return getattr(self, head)
        raise KeyError(f"unknown head {head!r}; expected one of {HEADS}")


def default_taxonomy_path() -> Path:
    """KEFU_TAXONOMY, or the packaged file when it is unset or empty (as an empty KEFU_*
    setting is: `settings.py`), not the current folder."""
    return Path(os.environ.get("KEFU_TAXONOMY") or DEFAULT_TAXONOMY_PATH)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read and check the taxonomy file; errors name the file and the offending entry."""
    source = Path(path) if path else default_taxonomy_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("taxonomy file not found; set KEFU_TAXONOMY", file=str(source)) from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, not UTF-8
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        raise DataError(
            f"taxonomy file cannot be read ({reason}); set KEFU_TAXONOMY to a YAML file",
            file=str(source),
        ) from None
    except yaml.YAMLError as exc:
        raise DataError(f"taxonomy is not valid YAML: {exc}", file=str(source)) from None
    try:
        groups = tuple(Group(g["id"], g["name"], g["queue"]) for g in raw["groups"])
        group_ids = {g.id for g in groups}
        intents = tuple(
            Label(i["id"], i["name"], i.get("description", ""), group=i["group"])
            for i in raw["intents"]
        )
        urgency = tuple(
            Label(u["id"], u["name"], u.get("description", ""), priority=u["priority"])
            for u in raw["urgency"]
        )
        emotion = tuple(Label(e["id"], e["name"], e.get("description", "")) for e in raw["emotion"])
        taxonomy = Taxonomy(int(raw["version"]), groups, intents, urgency, emotion, raw["routing"])
    except (KeyError, TypeError) as exc:
        raise DataError(f"taxonomy entry is missing a field: {exc}", file=str(source)) from None
    for intent in intents:
        if intent.group not in group_ids:
            raise DataError(
                f"intent {intent.id!r} names unknown group {intent.group!r}", file=str(source)
            )
    for head in HEADS:
        ids = taxonomy.labels(head)
        if len(set(ids)) != len(ids):
            raise DataError(f"duplicate label id in head {head!r}", file=str(source))
    return taxonomy
