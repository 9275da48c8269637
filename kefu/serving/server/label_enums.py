"""API enums built from the taxonomy (the packaged one, or `KEFU_TAXONOMY`): label ids and
priorities as schema types, fixed at import because the OpenAPI schema's types are.

Generated clients get label ids and priorities as types; a bundle whose labels are not in the
taxonomy is refused at load (`check_labels_in_schema`), never answered with a 500.
"""

from __future__ import annotations

from enum import StrEnum

from kefu.errors import BundleError
from kefu.serving.taxonomy import HEADS, PRIORITIES, load_taxonomy

_TAXONOMY = load_taxonomy()
IntentId = StrEnum("IntentId", {label: label for label in _TAXONOMY.labels("intent")})  # type: ignore[misc]
UrgencyId = StrEnum("UrgencyId", {label: label for label in _TAXONOMY.labels("urgency")})  # type: ignore[misc]
EmotionId = StrEnum("EmotionId", {label: label for label in _TAXONOMY.labels("emotion")})  # type: ignore[misc]
Priority = StrEnum("Priority", {priority: priority for priority in PRIORITIES})  # type: ignore[misc]
LABEL_ENUMS: dict[str, type[StrEnum]] = {
    "intent": IntentId,
    "urgency": UrgencyId,
    "emotion": EmotionId,
}


def check_labels_in_schema(labels: dict[str, tuple[str, ...]], where: str) -> None:
    """Refuse a bundle whose label ids the API schema does not list (answers must validate)."""
    for head in HEADS:
        known = {member.value for member in LABEL_ENUMS[head]}
        unknown = [label for label in labels[head] if label not in known]
        if unknown:
            raise BundleError(
                f"{where}: {head} labels {unknown} are not in the packaged taxonomy "
                f"(taxonomy version {_TAXONOMY.version}); serve it with the kefu it was trained for"
            )
