"""HTTP request models of the kefu API (part of the OpenAPI schema at /docs).

Schemas check structure and types only; limits that depend on settings or on the loaded
model (batch size, text length, metadata size, known intent ids) are checked in `handlers.py`,
so one schema serves every deployment.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kefu.serving.bundle.schema import VARIANTS
from kefu.serving.routing import MAX_PREVIOUS_INTENTS
from kefu.serving.server.label_enums import IntentId


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


def _whole_number(value: Any) -> Any:
    """The schema's `integer` is JSON Schema's, a value rather than a spelling: 3.0 is the
    integer 3 (a client's encoder may write a whole float so). 3.5, "3" and true stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Text = Annotated[StrictStr, AfterValidator(_encodable)]
# The bound comes before the float conversion: so placed, the schema states it as `minimum`
TurnNumber = Annotated[StrictInt, Field(ge=1), BeforeValidator(_whole_number)]
Count = Annotated[StrictInt, Field(ge=0), BeforeValidator(_whole_number)]
# The schema says what the server refuses, so a generated client or a schema check does not
# take it for valid; the runtime check stays the handler's, with its own code (`empty_text`,
# `unknown_intent`, `invalid_input`) and message.
MessageText = Annotated[
    Text,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "description": "One customer turn, as typed; it must hold something to read "
            "(not only white space, markup or invisible characters).",
        }
    ),
]


_STRING = TypeAdapter(StrictStr)


def _string(value: Any) -> str:
    return _STRING.validate_python(value)


# An intent id in the schema (a reference to IntentId, so a generated client has one intent
# type), validated as any string: an id the loaded model does not know (it may lack one of the
# taxonomy's) gets the handler's `unknown_intent`, not pydantic's enum error.
PreviousIntent = Annotated[StrictStr, PlainValidator(_string, json_schema_input_type=IntentId)]
Variant = Annotated[Text, WithJsonSchema({"type": "string", "enum": sorted(VARIANTS)})]
Id = Annotated[str, StringConstraints(strict=True, max_length=256), AfterValidator(_encodable)]
ServerPath = Annotated[
    StrictStr,
    Field(max_length=4096),  # PATH_MAX
    AfterValidator(_encodable),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 4096}),  # "" is refused
]


class Strict(BaseModel):
    # Unknown fields are refused: a typo such as "txt" must not pass as a missing text.
    model_config = ConfigDict(extra="forbid")


class Context(Strict):
    """What the caller knows about the conversation; kefu keeps no conversation state."""

    turn: TurnNumber | None = Field(
        default=None, description="Customer turn number of this message, 1-based."
    )
    previous_intents: list[PreviousIntent | None] = Field(
        default_factory=list,
        max_length=MAX_PREVIOUS_INTENTS,
        description="Intent ids of the earlier customer turns, oldest first; null for a turn "
        "whose intent abstained (the bot could not tell what the customer wanted).",
    )
    clarifications: Count = Field(
        default=0,
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
    text: MessageText
    context: Context | None = None
    metadata: Metadata | None = Field(default=None, description=METADATA_DESCRIPTION)


def _at_least_one(schema: dict[str, Any]) -> None:
    """The `messages` array holds at least one message (`anyOf`: the array, or null); an empty
    list is refused (`empty_messages`) by the handler."""
    for branch in schema["anyOf"]:
        if branch.get("type") == "array":
            branch["minItems"] = 1


SINGLE_FIELDS = ("text", "id", "context", "metadata")  # the one-message form's fields
NULL = {"type": "null"}  # JSON Schema's null: the second branch of each optional field's anyOf
CLASSIFY_EXAMPLES: list[dict[str, Any]] = [
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


def _classify_request_schema(schema: dict[str, Any]) -> None:
    """The examples, and the two forms as `ClassifyRequest._one_form` tells them apart, null
    taken as absent: `oneOf` `text` given and `messages` absent or null, or `messages` given and
    the single form's fields absent or null. The branches exclude each other: a body with both
    forms, or neither, matches none. Each branch restates its field's own schema (without null),
    not merely its type, so a client generated from the branches keeps typed messages. The
    validator still answers with its own codes (`ambiguous_request`, `missing_field`)."""

    def given(name: str) -> dict[str, Any]:
        not_null = [branch for branch in schema["properties"][name]["anyOf"] if branch != NULL]
        return copy.deepcopy(not_null[0])

    schema["examples"] = CLASSIFY_EXAMPLES
    schema["oneOf"] = [
        {
            "title": "One message",
            "required": ["text"],
            "properties": {"text": given("text"), "messages": dict(NULL)},
        },
        {
            "title": "A batch",
            "required": ["messages"],
            "properties": {"messages": given("messages")}
            | {name: dict(NULL) for name in SINGLE_FIELDS},
        },
    ]


class ClassifyRequest(Strict):
    """Either one message (`text`, optional `id` and `context`) or a batch in `messages`."""

    text: MessageText | None = None
    id: Id | None = None
    context: Context | None = None
    metadata: Metadata | None = Field(default=None, description=METADATA_DESCRIPTION)
    messages: list[Message] | None = Field(default=None, json_schema_extra=_at_least_one)

    model_config = ConfigDict(extra="forbid", json_schema_extra=_classify_request_schema)

    @model_validator(mode="after")
    def _one_form(self) -> ClassifyRequest:
        if self.messages is not None and any(
            getattr(self, name) is not None for name in SINGLE_FIELDS
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


class ReloadRequest(Strict):
    bundle: ServerPath | None = Field(
        default=None, description="Bundle directory on the server; default: the current one."
    )
    variant: Variant | None = Field(default=None, description="fp32 or int8; default: as now.")
