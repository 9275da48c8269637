"""One triaged message as plain JSON values: the shape of a `results[i]` of POST /v1/classify.

The server answers with it and `kefu classify` prints it, so a message looks the same whichever
way it was sent. Built directly rather than through the response's pydantic models: the values
come from the loaded model and routing, whose labels were checked against the schema's enums at
load (`check_labels_in_schema`), so validating every answer again would only spend CPU.
"""

from __future__ import annotations

from typing import Any

from kefu.serving.classifier import HeadPrediction
from kefu.serving.deployment import Triage
from kefu.serving.routing import Decision


def head_payload(head: HeadPrediction) -> dict[str, Any]:
    return {
        "label": head.label,
        "name": head.name,
        "confidence": head.confidence,
        "abstain": head.abstain,
        "top": [{"label": label, "confidence": confidence} for label, confidence in head.top],
    }


def route_payload(decision: Decision) -> dict[str, Any]:
    return decision.as_plain() | {
        "candidates": [
            {"intent": c.intent, "name": c.name, "confidence": c.confidence}
            for c in decision.candidates
        ]
    }


def result_payload(result_id: str, triaged: Triage) -> dict[str, Any]:
    """`{id, intent, urgency, emotion, group, route, entities, truncated}`, in the schema's order."""
    prediction, decision = triaged
    heads = prediction.heads
    return {
        "id": result_id,
        "intent": head_payload(heads["intent"]),
        "urgency": head_payload(heads["urgency"]),
        "emotion": head_payload(heads["emotion"]),
        "group": prediction.group,
        "route": route_payload(decision),
        "entities": [
            {"kind": entity.kind, "text": entity.text, "start": entity.start, "end": entity.end}
            for entity in prediction.entities
        ],
        "truncated": prediction.truncated,
    }
