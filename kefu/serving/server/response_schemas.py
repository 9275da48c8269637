"""HTTP response models of the kefu API: the OpenAPI schema of what the server answers.

The classify handler serialises its answers from plain values (`handlers.result_payloads`)
rather than through these models; their labels were checked against the enums at load.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from kefu.serving.routing import Action, Reason
from kefu.serving.server.label_enums import EmotionId, IntentId, Priority, UrgencyId
from kefu.serving.server.request_schemas import Metadata


class TopLabel(BaseModel):
    label: str
    confidence: float


class HeadResult(BaseModel):
    label: str | None = Field(
        description="Label id (stable API value); null when the model has no trained head "
        "for it (GET /v1/model lists `untrained_heads`)."
    )
    name: str | None = Field(description="Chinese display name.")
    confidence: float | None = Field(description="Calibrated probability of `label`.")
    abstain: bool = Field(description="True when the head is not confident enough to act on.")
    top: list[TopLabel] = Field(description="Best labels with their probabilities, best first.")


# One result type per head, so each `label` is typed with that head's ids in the schema.
class IntentTop(TopLabel):
    label: IntentId  # type: ignore[valid-type]


class UrgencyTop(TopLabel):
    label: UrgencyId  # type: ignore[valid-type]


class EmotionTop(TopLabel):
    label: EmotionId  # type: ignore[valid-type]


class IntentResult(HeadResult):
    label: IntentId = Field(description="Intent id (stable API value).")  # type: ignore[valid-type]
    top: list[IntentTop] = Field(description="Best intents with probabilities, best first.")  # type: ignore[assignment]


class UrgencyResult(HeadResult):
    label: UrgencyId | None = Field(  # type: ignore[valid-type]
        description="Urgency id (stable API value); null when the model's urgency head is untrained."
    )
    top: list[UrgencyTop] = Field(description="Best urgencies with probabilities, best first.")  # type: ignore[assignment]


class EmotionResult(HeadResult):
    label: EmotionId | None = Field(  # type: ignore[valid-type]
        description="Emotion id (stable API value); null when the model's emotion head is untrained."
    )
    top: list[EmotionTop] = Field(description="Best emotions with probabilities, best first.")  # type: ignore[assignment]


class Candidate(BaseModel):
    intent: IntentId = Field(description="Intent id.")  # type: ignore[valid-type]
    name: str = Field(description="Chinese display name, to show the customer.")
    confidence: float = Field(description="Calibrated probability of the intent.")


class Route(BaseModel):
    queue: str
    priority: Priority = Field(description="P0 (most urgent) .. P3.")  # type: ignore[valid-type]
    action: Action = Field(
        description="bot: answer automatically; clarify: ask the customer to choose between "
        "`candidates`; human: hand over to a person."
    )
    escalate: bool = Field(description="action == 'human' (kept for older clients).")
    reasons: list[Reason] = Field(
        description="Why the message is routed as it is, in a fixed order; empty for bot. "
        "low_confidence alone gives clarify; any other reason gives human."
    )
    candidates: list[Candidate] = Field(
        description="Intents to offer when action is clarify, best first; empty otherwise."
    )


class EntitySpan(BaseModel):
    kind: str = Field(description="phone, order_id, tracking_number or amount.")
    text: str
    start: int = Field(description="Character offset in the request text.")
    end: int = Field(description="Exclusive character offset.")


class MessageResult(BaseModel):
    id: str
    intent: IntentResult
    urgency: UrgencyResult
    emotion: EmotionResult
    group: str = Field(description="Intent group (pre_sale, order, logistics, ...).")
    route: Route
    entities: list[EntitySpan]
    truncated: bool = Field(description="True when the text exceeded the model window.")
    metadata: Metadata | None = Field(
        default=None, description="The message's `metadata`, as sent; absent when none was sent."
    )


class ClassifyResponse(BaseModel):
    model_version: str
    request_id: str
    results: list[MessageResult] = Field(description="One result per message, in request order.")


class ErrorDetail(BaseModel):
    code: str = Field(
        description="What went wrong, for a program to branch on (`invalid_json`, `empty_text`, "
        "...; `invalid_http`, `head_timeout`, `head_too_large` and `concurrency_limit` come "
        "from the connection layer, before any route)."
    )
    message: str = Field(description="What was expected, what was found and how to fix it.")
    field: str | None = Field(  # always answered, null when no one value is at fault
        description="JSON path of the offending value (`messages[1].text`), or null."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


class ReloadResponse(BaseModel):
    model_version: str
    previous_model_version: str
    bundle: str
    variant: str
    load_seconds: float


class ModelInfo(BaseModel):
    model_version: str
    variant: str
    bundle: str = Field(description="Bundle directory name (never a filesystem path).")
    manifest: dict[str, Any]
    labels: dict[str, list[dict[str, str]]]
    intent_groups: dict[str, str]
    queues: dict[str, str]
    calibration: dict[str, dict[str, float]]
    policy: dict[str, Any]
    limits: dict[str, int]
