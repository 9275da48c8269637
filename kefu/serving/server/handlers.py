"""What POST /v1/classify does between parsing and replying, apart from HTTP.

`check_messages` enforces the limits that depend on settings and on the loaded model's labels
(text length, metadata size, known intent ids);
`conversation_context` turns a message's `context` into routing's input; `build_results` turns
the deployment's (prediction, decision) pairs into response objects; `observe` counts
predictions, abstentions and escalations and prepares the access-log fields.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kefu.errors import InputError, PayloadTooLarge
from kefu.serving.classifier import HeadPrediction
from kefu.serving.deployment import Triage
from kefu.serving.masking import mask_text
from kefu.serving.routing import ConversationContext, Decision
from kefu.serving.server.error_responses import shown
from kefu.serving.server.observability import Metrics, logged_text
from kefu.serving.server.schemas import (
    HEAD_RESULTS,
    HEAD_TOPS,
    Candidate,
    ClassifyRequest,
    EntitySpan,
    HeadResult,
    Message,
    MessageResult,
    Priority,
    Route,
)
from kefu.serving.settings import Settings
from kefu.serving.taxonomy import HEADS


def check_messages(
    request: ClassifyRequest,
    messages: Sequence[Message],
    settings: Settings,
    intents: Sequence[str],
) -> None:
    """Raise InputError (422) or PayloadTooLarge (413) naming the first offending field."""
    if not messages:
        raise InputError(
            f"messages is empty; send 1 to {settings.max_batch} messages",
            "messages",
            "empty_messages",
        )
    if len(messages) > settings.max_batch:
        raise PayloadTooLarge(
            f"{len(messages)} messages in one request; the limit is {settings.max_batch} "
            "(KEFU_MAX_BATCH); split the batch",
            "messages",
            "too_many_messages",
        )
    known_intents = set(intents)
    for index, message in enumerate(messages):
        text_field = request.message_field(index, "text")
        if not message.text.strip():
            raise InputError(
                f"{text_field} is empty or whitespace only; send the customer's message text",
                text_field,
                "empty_text",
            )
        if len(message.text) > settings.max_text_chars:
            raise InputError(
                f"{text_field} has {len(message.text)} characters; the limit is "
                f"{settings.max_text_chars} (KEFU_MAX_TEXT_CHARS)",
                text_field,
                "text_too_long",
            )
        if message.metadata is not None:
            check_metadata(message.metadata, request.message_field(index, "metadata"), settings)
        previous = message.context.previous_intents if message.context else []
        for position, intent in enumerate(previous):
            if intent is not None and intent not in known_intents:
                field = f"{request.message_field(index, 'context')}.previous_intents[{position}]"
                raise InputError(
                    f"{field} is {shown(repr(intent))}, not an intent id; "
                    "the ids are listed at GET /v1/model",
                    field,
                    "unknown_intent",
                )


def check_metadata(metadata: dict[str, Any], field: str, settings: Settings) -> None:
    """Metadata is echoed, never read: only its size is checked (as compact UTF-8 JSON)."""
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
    if size > settings.max_metadata_bytes:
        raise InputError(
            f"{field} is {size} bytes as JSON; the limit is {settings.max_metadata_bytes} "
            "(KEFU_MAX_METADATA_BYTES); keep ids and references there, not message data",
            field,
            "metadata_too_large",
        )


def conversation_context(message: Message) -> ConversationContext:
    if message.context is None:
        return ConversationContext()
    return ConversationContext(
        turn=message.context.turn,
        previous_intents=tuple(message.context.previous_intents),
        clarifications=message.context.clarifications,
    )


def route_result(decision: Decision) -> Route:
    return Route(
        queue=decision.queue,
        priority=Priority(decision.priority),
        action=decision.action,
        escalate=decision.escalate,
        reasons=list(decision.reasons),
        candidates=[
            Candidate(intent=c.intent, name=c.name, confidence=c.confidence)
            for c in decision.candidates
        ],
    )


def head_result(head_name: str, head: HeadPrediction) -> Any:
    top = HEAD_TOPS[head_name]
    return HEAD_RESULTS[head_name](
        label=head.label,
        name=head.name,
        confidence=head.confidence,
        abstain=head.abstain,
        top=[top(label=label, confidence=confidence) for label, confidence in head.top],
    )


def build_results(messages: Sequence[Message], triaged: Sequence[Triage]) -> list[MessageResult]:
    results = [
        MessageResult(
            id=message.id if message.id is not None else str(index),
            intent=head_result("intent", prediction.intent),
            urgency=head_result("urgency", prediction.urgency),
            emotion=head_result("emotion", prediction.emotion),
            group=prediction.group,
            route=route_result(decision),
            entities=[
                EntitySpan(kind=entity.kind, text=entity.text, start=entity.start, end=entity.end)
                for entity in prediction.entities
            ],
            truncated=prediction.truncated,
        )
        for index, (message, (prediction, decision)) in enumerate(
            zip(messages, triaged, strict=True)
        )
    ]
    for message, result in zip(messages, results, strict=True):
        if message.metadata is not None:  # set only when sent: unset fields are not answered
            result.metadata = message.metadata
    return results


def observe(
    metrics: Metrics, messages: Sequence[Message], results: Sequence[MessageResult], log_text: str
) -> list[dict[str, Any]]:
    """Count what was predicted and routed; return one access-log entry per message.

    The entry holds the caller's id (masked: callers sometimes use a phone number as id), the
    labels and the route; the text only when `log_text` is "masked" or "raw".
    """
    entries = []
    for message, result in zip(messages, results, strict=True):
        for head in HEADS:
            head_result_: HeadResult = getattr(result, head)
            if head_result_.label is None:  # an untrained head predicts nothing
                continue
            metrics.predictions.labels(head, head_result_.label).inc()
            if head_result_.abstain:
                metrics.abstentions.labels(head).inc()
        metrics.routes.labels(result.route.queue, result.route.priority).inc()
        metrics.actions.labels(result.route.action.value).inc()
        for reason in result.route.reasons:
            metrics.escalations.labels(reason.value).inc()
        if result.route.escalate:
            metrics.escalated.inc()
        entry = {
            "id": mask_text(result.id),
            "intent": result.intent.label,
            "urgency": result.urgency.label,
            "emotion": result.emotion.label,
            "queue": result.route.queue,
            "priority": result.route.priority,
            "action": result.route.action.value,
            "escalate": result.route.escalate,
            "reasons": result.route.reasons,
            "truncated": result.truncated,
        }
        if log_text != "off":
            entry["text"] = logged_text(message.text, raw=log_text == "raw")
        entries.append(entry)
    return entries
