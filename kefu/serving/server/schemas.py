"""HTTP request and response models of the kefu API (they are the OpenAPI schema at /docs).

Schemas check structure and types only; limits that depend on settings or on the loaded
model (batch size, text length, metadata size, known intent ids) are checked in `handlers.py`,
so one schema serves every deployment. Label ids and priorities are enums built from the
packaged taxonomy, so generated clients get them as types; a bundle whose labels are not in
the taxonomy is refused at load (`check_labels_in_schema`), never answered with a 500.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kefu.errors import BundleError
from kefu.serving.routing import Action, Reason
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


def _encodable(value: str) -> str:
    """JSON may carry lone UTF-16 surrogates (\\ud800); no tokenizer or reply can hold them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError(
            "invalid_text",
            "contains a lone surrogate {char} at position {position}; send valid UTF-8 text",
            {"char": repr(value[exc.start]), "position": exc.start},
        ) from None
    return value


Text = Annotated[StrictStr, AfterValidator(_encodable)]
Id = Annotated[str, StringConstraints(strict=True, max_length=256), AfterValidator(_encodable)]


class Strict(BaseModel):
    # Unknown fields are refused: a typo such as "txt" must not pass as a missing text.
    model_config = ConfigDict(extra="forbid")


class Context(Strict):
    """What the caller knows about the conversation; kefu keeps no conversation state."""

    turn: StrictInt | None = Field(
        default=None, ge=1, description="Customer turn number of this message, 1-based."
    )
    previous_intents: list[StrictStr | None] = Field(
        default_factory=list,
        max_length=1000,
        description="Intent ids of the earlier customer turns, oldest first; null for a turn "
        "whose intent abstained (the bot could not tell what the customer wanted).",
    )
    clarifications: StrictInt = Field(
        default=0,
        ge=0,
        description="How many times the bot already asked the customer to choose (route.action "
        "clarify) in this conversation.",
    )


Metadata = dict[str, Any]
METADATA_DESCRIPTION = (
    "Caller's own fields (session_id, channel, ...), echoed back unchanged in the result; "
    "at most KEFU_MAX_METADATA_BYTES as JSON."
)


class Message(Strict):
    id: Id | None = Field(default=None, description="Caller's id, echoed back; default: position.")
    text: Text = Field(description="One customer turn, as typed.")
    context: Context | None = None
    metadata: Metadata | None = Field(default=None, description=METADATA_DESCRIPTION)


class ClassifyRequest(Strict):
    """Either one message (`text`, optional `id` and `context`) or a batch in `messages`."""

    text: Text | None = None
    id: Id | None = None
    context: Context | None = None
    metadata: Metadata | None = Field(default=None, description=METADATA_DESCRIPTION)
    messages: list[Message] | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "我的快递三天没动了，急用！"},
                {
                    "messages": [
                        {
                            "id": "m1",
                            "text": "转人工",
                            "context": {"turn": 4},
                            "metadata": {"session_id": "s-1024"},
                        },
                        {
                            "id": "m2",
                            "text": "退款怎么还没到账",
                            "context": {"turn": 2, "previous_intents": ["refund_return"]},
                        },
                        {
                            "id": "m3",
                            "text": "就是那个",
                            "context": {"turn": 2, "previous_intents": [None], "clarifications": 1},
                        },
                    ]
                },
            ]
        },
    )

    @model_validator(mode="after")
    def _one_form(self) -> ClassifyRequest:
        if self.messages is not None and (
            self.text is not None
            or self.id is not None
            or self.context is not None
            or self.metadata is not None
        ):
            raise PydanticCustomError(
                "ambiguous_request",
                "send either {'text': ...} for one message or {'messages': [...]} for a batch, "
                "not both",
                {"field": "messages"},
            )
        if self.messages is None and self.text is None:
            raise PydanticCustomError(
                "missing_field",
                "request needs 'text' (one message) or 'messages' (a batch)",
                {"field": "text"},
            )
        return self

    def as_messages(self) -> list[Message]:
        """The request as a batch; the single form becomes one message."""
        if self.messages is not None:
            return self.messages
        assert self.text is not None  # guaranteed by _one_form
        return [Message(id=self.id, text=self.text, context=self.context, metadata=self.metadata)]

    def message_field(self, index: int, name: str) -> str:
        """Field path of `name` in message `index`, as the client spelt the request."""
        return name if self.messages is None else f"messages[{index}].{name}"


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


HEAD_RESULTS: dict[str, type[HeadResult]] = {
    "intent": IntentResult,
    "urgency": UrgencyResult,
    "emotion": EmotionResult,
}
HEAD_TOPS: dict[str, type[TopLabel]] = {
    "intent": IntentTop,
    "urgency": UrgencyTop,
    "emotion": EmotionTop,
}


class Candidate(BaseModel):
    intent: str = Field(description="Intent id.")
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
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ReloadRequest(Strict):
    bundle: StrictStr | None = Field(
        default=None, description="Bundle directory on the server; default: the current one."
    )
    variant: StrictStr | None = Field(default=None, description="fp32 or int8; default: as now.")


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
