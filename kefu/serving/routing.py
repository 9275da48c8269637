"""Routing: which queue, what priority, and what happens next: bot, clarify or human, and why.

`decide(prediction, context, policy)` is a pure function of the model's prediction, the
conversation context the caller sends (no server-side state) and a validated `RoutingPolicy`
(`routing_policy.py`). It is built from three smaller pure functions that evaluation calls on
gold labels, so each rule has exactly one definition:

- `content_reasons(intent, urgency, emotion, asks_for_human, policy)`: the rules that read the
  message's own labels (human requested, complaint, critical, angry, high urgency + negative;
  on a prediction, the last also fires when the model's probability of "high urgency and a
  negative emotion" reaches the policy's `min_probability`, see `high_negative_probability`);
- `conversation_reasons(intent, low_confidence, context, policy)`: the rules that read the
  conversation (turn limit, repeated intent, a clarification that already failed);
- `choose_action(reasons)`: any reason but `low_confidence` hands over to a human; low
  confidence alone makes the bot ask the customer to choose (`clarify`); no reason, `bot`.

Reasons are the stable machine-readable codes of `Reason`; the README documents each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kefu.serving.classifier import HeadPrediction, Prediction
from kefu.serving.inputs import is_int, is_missing
from kefu.serving.preview import preview

if TYPE_CHECKING:
    from kefu.serving.routing_policy import RoutingPolicy


class Action(StrEnum):
    """What happens to a message: the bot answers, asks the customer to choose, or a person takes over."""

    BOT = "bot"
    CLARIFY = "clarify"
    HUMAN = "human"


class Reason(StrEnum):
    """Why a message is routed as it is. Declaration order is the order reasons are listed in."""

    HUMAN_REQUESTED = "human_requested"  # intent human_agent, or the text asks for a person
    COMPLAINT = "complaint"  # intent complaint
    CRITICAL_URGENCY = "critical_urgency"  # urgency critical
    ANGRY = "angry"  # emotion angry
    HIGH_URGENCY_NEGATIVE = "high_urgency_negative"  # urgency high with anxious or dissatisfied
    LOW_CONFIDENCE = "low_confidence"  # a policy head abstains: clarify, never human on its own
    LONG_CONVERSATION = "long_conversation"  # more customer turns than the policy allows
    REPEATED_INTENT = "repeated_intent"  # the intent already came up in earlier turns
    CLARIFICATION_FAILED = "clarification_failed"  # unsure again after a clarification


# The content rules: they read only the message's labels (what evaluation scores on gold labels).
CONTENT_REASONS: tuple[Reason, ...] = (
    Reason.HUMAN_REQUESTED,
    Reason.COMPLAINT,
    Reason.CRITICAL_URGENCY,
    Reason.ANGRY,
    Reason.HIGH_URGENCY_NEGATIVE,
)
# The conversation rules: they read the request's context.
CONVERSATION_REASONS: tuple[Reason, ...] = (
    Reason.LONG_CONVERSATION,
    Reason.REPEATED_INTENT,
    Reason.CLARIFICATION_FAILED,
)
# Every reason but low confidence hands the message to a person.
HUMAN_REASONS = frozenset(Reason) - {Reason.LOW_CONFIDENCE}
_ORDER = {reason: index for index, reason in enumerate(Reason)}


# The most earlier intents one context carries (the API refuses a longer previous_intents), so a
# caller of a longer conversation sends the latest ones; batch scoring routes the same way.
MAX_PREVIOUS_INTENTS = 1000


@dataclass(frozen=True)
class ConversationContext:
    """What the caller knows about the conversation so far (kefu keeps no conversation state).

    Checked when built, as the server's request schema checks its JSON: a str given as
    `previous_intents` would otherwise be read letter by letter and never repeat an intent.
    """

    turn: int | None = None  # customer turn number of this message, 1-based
    # intents of the earlier customer turns, oldest first; None where the intent abstained
    previous_intents: Sequence[str | None] = ()
    clarifications: int = 0  # clarifying questions the bot already asked in this conversation

    def __post_init__(self) -> None:
        if self.turn is not None:
            if not is_int(self.turn) or self.turn < 1:
                raise ValueError(f"turn must be None or an integer >= 1, got {self.turn!r}")
            object.__setattr__(self, "turn", int(self.turn))  # numpy's integers too
        if not is_int(self.clarifications) or self.clarifications < 0:
            raise ValueError(f"clarifications must be an integer >= 0, got {self.clarifications!r}")
        object.__setattr__(self, "clarifications", int(self.clarifications))
        given = self.previous_intents
        if isinstance(given, str | bytes | Mapping) or not isinstance(given, Iterable):
            raise TypeError(
                "previous_intents must be a list of intent ids (None for a turn whose intent "
                f"abstained), oldest first, got {type(given).__name__} {preview(given)}"
            )
        previous = tuple(given)
        for index, intent in enumerate(previous):
            if intent is not None and not isinstance(intent, str):
                missing = " (a missing value: None marks a turn whose intent abstained)"
                raise TypeError(
                    f"previous_intents[{index}] must be an intent id or None, got {intent!r}"
                    + (missing if is_missing(intent) else "")
                )
        object.__setattr__(self, "previous_intents", previous)


@dataclass(frozen=True)
class Candidate:
    """An intent the bot offers when it asks the customer to choose."""

    intent: str
    name: str
    confidence: float


@dataclass(frozen=True)
class Decision:
    queue: str
    priority: str
    action: Action
    reasons: list[Reason] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)  # clarify only, best first

    @property
    def escalate(self) -> bool:
        """The pre-action flag, kept for callers that read it: a person takes over."""
        return self.action is Action.HUMAN

    def as_plain(self) -> dict[str, Any]:
        """The route as JSON values, candidates as ids (callers that show names expand them)."""
        return {
            "queue": self.queue,
            "priority": self.priority,
            "action": self.action.value,
            "escalate": self.escalate,
            "reasons": [reason.value for reason in self.reasons],
            "candidates": [candidate.intent for candidate in self.candidates],
        }


def content_reasons(
    intent: str,
    urgency: str | None,  # None: the bundle's urgency head is untrained, its rules never fire
    emotion: str | None,
    asks_for_human: bool,
    policy: RoutingPolicy,
    high_negative: float | None = None,  # the model's P(high urgency and negative emotion)
) -> list[Reason]:
    """The content rules on one message's labels (predicted or gold), in `Reason` order."""
    on = policy.enabled
    reasons = []
    if Reason.HUMAN_REQUESTED in on and (
        intent in policy.human_request_intents or (asks_for_human and policy.human_request_in_text)
    ):
        reasons.append(Reason.HUMAN_REQUESTED)
    if Reason.COMPLAINT in on and intent in policy.complaint_intents:
        reasons.append(Reason.COMPLAINT)
    if Reason.CRITICAL_URGENCY in on and urgency in policy.critical_urgency:
        reasons.append(Reason.CRITICAL_URGENCY)
    if Reason.ANGRY in on and emotion in policy.angry_emotions:
        reasons.append(Reason.ANGRY)
    likely = (
        high_negative is not None
        and policy.high_urgency_min_probability is not None
        and high_negative >= policy.high_urgency_min_probability
    )
    if Reason.HIGH_URGENCY_NEGATIVE in on and (
        (urgency in policy.high_urgency and emotion in policy.high_urgency_emotions) or likely
    ):
        reasons.append(Reason.HIGH_URGENCY_NEGATIVE)
    return reasons


def label_probability(head: HeadPrediction, labels: frozenset[str]) -> float:
    """P(the head's label is one of `labels`), summed over its ranked labels."""
    return sum(confidence for label, confidence in head.ranking if label in labels)


def high_negative_probability(prediction: Prediction, policy: RoutingPolicy) -> float | None:
    """P(urgency in the rule's urgencies) x P(emotion in its emotions); None if a head is untrained.

    The two heads are read as independent. Each head's best label alone misses a message the
    model finds fairly likely urgent and fairly likely upset (high 0.4, medium 0.45; anxious
    0.8): on real traffic most of the messages a person should take are of this kind.
    """
    urgency, emotion = prediction.urgency, prediction.emotion
    if not (urgency.trained and emotion.trained):
        return None
    return label_probability(urgency, policy.high_urgency) * label_probability(
        emotion, policy.high_urgency_emotions
    )


def conversation_reasons(
    intent: str, low_confidence: bool, context: ConversationContext, policy: RoutingPolicy
) -> list[Reason]:
    """The conversation rules: turn limit, repeated intent, a clarification that failed."""
    on = policy.enabled
    previous = list(context.previous_intents)
    reasons = []
    # a closing turn (谢谢, 好的, 没有了) past the limit has nothing for a person to take over
    long = (
        context.turn is not None
        and context.turn > policy.max_turns
        and intent not in policy.long_ignore_intents
    )
    if Reason.LONG_CONVERSATION in on and long:
        reasons.append(Reason.LONG_CONVERSATION)
    repeated = (
        intent not in policy.repeat_ignore_intents and previous.count(intent) >= policy.min_repeats
    )
    if Reason.REPEATED_INTENT in on and repeated:
        reasons.append(Reason.REPEATED_INTENT)
    clarified = (
        context.clarifications >= policy.after_clarifications
        or trailing_abstentions(previous) >= policy.after_abstained_turns
    )
    if Reason.CLARIFICATION_FAILED in on and low_confidence and clarified:
        reasons.append(Reason.CLARIFICATION_FAILED)
    return reasons


def trailing_abstentions(previous_intents: Sequence[str | None]) -> int:
    """How many of the latest earlier turns, counted back from this one, had no intent."""
    count = 0
    for intent in reversed(previous_intents):
        if intent is not None:
            break
        count += 1
    return count


def choose_action(reasons: Iterable[Reason]) -> Action:
    """Human if any reason hands over; clarify if the only reason is low confidence; else bot."""
    reasons = set(reasons)
    if reasons & HUMAN_REASONS:
        return Action.HUMAN
    if Reason.LOW_CONFIDENCE in reasons:
        return Action.CLARIFY
    return Action.BOT


def is_low_confidence(prediction: Prediction, policy: RoutingPolicy) -> bool:
    return Reason.LOW_CONFIDENCE in policy.enabled and any(
        prediction.heads[head].trained and prediction.heads[head].abstain
        for head in policy.low_confidence_heads
    )


def decide(prediction: Prediction, context: ConversationContext, policy: RoutingPolicy) -> Decision:
    """The route of one message: its prediction, what came before it, and the policy's rules."""
    _check_decide_arguments(prediction, context, policy)
    intent, urgency, emotion = (
        prediction.intent.label,
        prediction.urgency.label,
        prediction.emotion.label,
    )
    assert intent is not None  # the intent head is always trained (read_bundle checks it)
    low_confidence = is_low_confidence(prediction, policy)
    reasons = content_reasons(
        intent,
        urgency,
        emotion,
        prediction.asks_for_human,
        policy,
        high_negative_probability(prediction, policy),
    )
    if low_confidence:
        reasons.append(Reason.LOW_CONFIDENCE)
    reasons += conversation_reasons(intent, low_confidence, context, policy)
    reasons.sort(key=_ORDER.__getitem__)
    action = choose_action(reasons)
    # an untrained urgency head says nothing: the ordinary priority, neither rushed nor parked
    priority = policy.urgency_priorities.get(urgency, "P3") if urgency is not None else "P2"
    # the policy's angry emotions, as for the `angry` rule; "P0" < "P1": the lower string is the
    # higher priority
    if emotion in policy.angry_emotions:
        priority = min(priority, policy.angry_priority)
    return Decision(
        queue=policy.group_queues[policy.intent_groups[intent]],
        priority=priority,
        action=action,
        reasons=reasons,
        candidates=clarify_candidates(prediction.intent, policy)
        if action is Action.CLARIFY
        else [],
    )


def _check_decide_arguments(
    prediction: Prediction, context: ConversationContext, policy: RoutingPolicy
) -> None:
    """Wrong types, and earlier intents the policy does not know, named before any rule runs."""
    from kefu.serving.routing_policy import RoutingPolicy  # routing_policy imports this module

    if not isinstance(prediction, Prediction):
        raise TypeError(
            f"prediction must be one Prediction (an item of Classifier.predict's list), got "
            f"{type(prediction).__name__}"
        )
    if not isinstance(context, ConversationContext):
        raise TypeError(
            f"context must be a ConversationContext (ConversationContext() when there is "
            f"none), got {type(context).__name__}"
        )
    if not isinstance(policy, RoutingPolicy):
        raise TypeError(
            f"policy must be a RoutingPolicy, e.g. RoutingPolicy.for_bundle(classifier.bundle), "
            f"got {type(policy).__name__}"
        )
    intent = prediction.intent.label
    if intent not in policy.intent_groups:  # its queue is looked up by the intent's group
        raise ValueError(
            f"the prediction's intent {intent!r} is not an intent id of this policy (a "
            "prediction of another bundle?); route a bundle's predictions with "
            "RoutingPolicy.for_bundle(that bundle)"
        )
    for index, previous in enumerate(context.previous_intents):
        if previous is not None and previous not in policy.intent_groups:
            raise ValueError(
                f"context.previous_intents[{index}] is {previous!r}, not an intent id; the ids "
                f"are {sorted(policy.intent_groups)}"
            )


def clarify_candidates(intent: HeadPrediction, policy: RoutingPolicy) -> list[Candidate]:
    """The intents to offer: the best one always, then those at `min_confidence` or above."""
    chosen = [
        (label, confidence)
        for rank, (label, confidence) in enumerate(intent.ranking)
        if rank == 0 or confidence >= policy.min_candidate_confidence
    ][: policy.max_candidates]
    return [
        Candidate(label, policy.intent_names.get(label, label), confidence)
        for label, confidence in chosen
    ]
