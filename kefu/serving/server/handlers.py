"""What POST /v1/classify does between parsing and replying, apart from HTTP.

`check_messages` enforces the limits that depend on settings and on the loaded model's labels
(text length, metadata size, known intent ids);
`conversation_context` turns a message's `context` into routing's input; `result_payloads` and
`response_json` turn the deployment's (prediction, decision) pairs into the response body
(`kefu/serving/result_json.py`), serialised once; `observe` counts predictions, abstentions
and escalations and prepares the access-log fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic_core import to_json

from kefu.errors import InputError, PayloadTooLarge
from kefu.serving.deployment import Triage
from kefu.serving.masking import mask_text
from kefu.serving.normalize import has_content
from kefu.serving.preview import ELLIPSIS, LONGEST_ESCAPE
from kefu.serving.result_json import result_payload
from kefu.serving.routing import ConversationContext
from kefu.serving.server.access_log import Deferred, logged_text
from kefu.serving.server.error_responses import ECHO_CHARS, shown
from kefu.serving.server.metrics import Metrics
from kefu.serving.server.request_schemas import ClassifyRequest, Message
from kefu.serving.settings import Settings
from kefu.serving.taxonomy import HEADS
from kefu.tabular.values import SURROGATE

# pydantic-core refuses to serialise deeper than about 250 levels; real metadata is flat
MAX_METADATA_DEPTH = 32
# As much of a metadata path as `shown` looks at: a longer path is cut the same way, so keys
# and positions deeper than this are not added to it (a long key costs no long path).
PATH_CHARS = ECHO_CHARS + len(ELLIPSIS) + LONGEST_ESCAPE


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
    first_with_id: dict[str, int] = {}
    for index, message in enumerate(messages):
        answered_id = message.id if message.id is not None else str(index)
        if answered_id in first_with_id:
            field = request.message_field(index, "id")
            raise InputError(
                f"{field} is {shown(repr(answered_id), escaped=True)}, the id of "
                f"{request.message_field(first_with_id[answered_id], 'id')} too (a message "
                "without an id is answered under its position); give each message its own id",
                field,
                "duplicate_id",
            )
        first_with_id[answered_id] = index
        text_field = request.message_field(index, "text")
        if len(message.text) > settings.max_text_chars:  # first: never normalise a huge text
            raise InputError(
                f"{text_field} has {len(message.text)} characters; the limit is "
                f"{settings.max_text_chars} (KEFU_MAX_TEXT_CHARS)",
                text_field,
                "text_too_long",
            )
        if not has_content(message.text):
            raise InputError(
                f"{text_field} is empty or holds only white space, markup or invisible "
                "characters; send the customer's message text",
                text_field,
                "empty_text",
            )
        if message.metadata is not None:
            check_metadata(message.metadata, request.message_field(index, "metadata"), settings)
        previous = message.context.previous_intents if message.context else []
        for position, intent in enumerate(previous):
            if intent is not None and intent not in known_intents:
                field = f"{request.message_field(index, 'context')}.previous_intents[{position}]"
                raise InputError(
                    f"{field} is {shown(repr(intent), escaped=True)}, not an intent id; "
                    "the ids are listed at GET /v1/model",
                    field,
                    "unknown_intent",
                )


def check_metadata(metadata: dict[str, Any], field: str, settings: Settings) -> None:
    """Metadata is echoed, never read: it must be small (as compact UTF-8 JSON, measured first,
    so a large object is refused before it is walked) and answerable: valid Unicode, nested at
    most MAX_METADATA_DEPTH deep (JSON encoders cap the depth)."""
    try:
        encoded = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
        size = len(encoded.encode("utf-8", "surrogatepass"))
    except RecursionError:
        size = 0  # deeper than the encoder goes: the depth check below names it
    if size > settings.max_metadata_bytes:
        raise InputError(
            f"{field} is {size} bytes as JSON; the limit is {settings.max_metadata_bytes} "
            "(KEFU_MAX_METADATA_BYTES); keep ids and references there, not message data",
            field,
            "metadata_too_large",
        )
    for path, value, depth in metadata_values(metadata, field):
        # the path as a whole is quoted, cut as any echo: a key of 60 characters under one of
        # 60 is within the limit one by one, not together
        if depth > MAX_METADATA_DEPTH:
            raise InputError(
                f"{field} is nested more than {MAX_METADATA_DEPTH} levels deep "
                f"(at {shown(path, escaped=True)}); keep ids and references there, not documents",
                field,
                "metadata_too_deep",
            )
        if isinstance(value, str) and (bad := SURROGATE.search(value)):
            position = bad.start()
            where = shown(path, escaped=True)
            raise InputError(
                f"{where} contains a lone surrogate {value[position]!r} at position {position}; "
                "send valid UTF-8 text",
                where,
                "invalid_text",
            )


def metadata_values(value: Any, path: str, depth: int = 1) -> Iterator[tuple[str, Any, int]]:
    """Every key and value inside `value` with its JSON path and nesting depth; stops going
    deeper past MAX_METADATA_DEPTH, so a body nested a thousand deep costs no recursion.

    A path is input too: quote it through `shown(path, escaped=True)`. It holds a key's lone
    surrogates spelt out (no answer can hold one), and only its first PATH_CHARS or so
    characters: what lies beyond would be cut anyway.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            spelt = key[:PATH_CHARS].encode("utf-8", "backslashreplace").decode()
            item_path = _deeper(path, f".{spelt}")
            yield item_path, key, depth
            yield item_path, item, depth
            if depth <= MAX_METADATA_DEPTH:
                yield from metadata_values(item, item_path, depth + 1)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            item_path = _deeper(path, f"[{position}]")
            yield item_path, item, depth
            if depth <= MAX_METADATA_DEPTH:
                yield from metadata_values(item, item_path, depth + 1)


def _deeper(path: str, step: str) -> str:
    return path if len(path) > PATH_CHARS else path + step


def conversation_context(message: Message) -> ConversationContext:
    if message.context is None:
        return ConversationContext()
    return ConversationContext(
        turn=message.context.turn,
        previous_intents=tuple(message.context.previous_intents),
        clarifications=message.context.clarifications,
    )


def result_payloads(messages: Sequence[Message], triaged: Sequence[Triage]) -> list[dict[str, Any]]:
    """One `MessageResult` per message (`result_json`); `metadata` is present only when the
    message carried it (unset fields are not answered)."""
    results = []
    for index, (message, triage) in enumerate(zip(messages, triaged, strict=True)):
        result = result_payload(message.id if message.id is not None else str(index), triage)
        if message.metadata is not None:
            result["metadata"] = message.metadata
        results.append(result)
    return results


def response_json(model_version: str, request_id: str, results: list[dict[str, Any]]) -> bytes:
    """The `ClassifyResponse` body, serialised once (pydantic-core's encoder, as FastAPI's own).

    Echoed metadata may hold NaN or Infinity (Python's JSON reader accepts them); they are
    answered as null, as the response model's serialiser did.
    """
    body = {"model_version": model_version, "request_id": request_id, "results": results}
    return to_json(body, inf_nan_mode="null")


def observe(
    metrics: Metrics, messages: Sequence[Message], triaged: Sequence[Triage], log_text: str
) -> Deferred:
    """Count what was predicted and routed; return the access log's per-message entries.

    The entries are built on the log thread when the line is written (`Deferred`), not on the
    event loop. Each holds the caller's id (masked: callers sometimes use a phone number as
    id), the labels and the route; the text only when `log_text` is "masked" or "raw".
    """
    for prediction, decision in triaged:
        for head in HEADS:
            head_prediction = prediction.heads[head]
            if head_prediction.label is None:  # an untrained head predicts nothing
                continue
            metrics.predicted(head, head_prediction.label).inc()
            if head_prediction.abstain:
                metrics.abstained(head).inc()
        metrics.routed(decision.queue, decision.priority).inc()
        metrics.acted(decision.action.value).inc()
        for reason in decision.reasons:
            metrics.reasoned(reason.value).inc()
        if decision.escalate:
            metrics.escalated.inc()
    return Deferred(lambda: log_entries(messages, triaged, log_text))


def log_entries(
    messages: Sequence[Message], triaged: Sequence[Triage], log_text: str
) -> list[dict[str, Any]]:
    entries = []
    for index, (message, (prediction, decision)) in enumerate(zip(messages, triaged, strict=True)):
        entry = {
            "id": mask_text(message.id if message.id is not None else str(index)),
            "intent": prediction.intent.label,
            "urgency": prediction.urgency.label,
            "emotion": prediction.emotion.label,
            "queue": decision.queue,
            "priority": decision.priority,
            "action": decision.action.value,
            "escalate": decision.escalate,
            "reasons": [reason.value for reason in decision.reasons],
            "truncated": prediction.truncated,
        }
        if log_text != "off":
            entry["text"] = logged_text(message.text, raw=log_text == "raw")
        entries.append(entry)
    return entries
