"""Hand-over per conversation (metrics.json's `conversations` block): each session routed turn by
turn with its context, scored against the content rules on its turns' gold labels."""

from dataclasses import replace

from kefu.serving.classifier import HeadPrediction, Prediction
from kefu.serving.routing_policy import RoutingPolicy
from kefu.serving.taxonomy import load_taxonomy
from kefu.training.data.loader import LabelledData, LabelledRow
from kefu.training.evaluation.conversations import (
    conversation_block,
    conversations_of,
    score_conversations,
)


def row(session, turn, intent, urgency="low", emotion="neutral", text="消息"):
    labels = {"intent": intent, "urgency": urgency, "emotion": emotion}
    return LabelledRow(f"{session}{turn}", text, labels, 1, {"session": session, "turn": turn})


def predicted(intent, urgency="low", emotion="neutral"):
    def head(label):
        return HeadPrediction(label, label, 1.0, False, [(label, 1.0)])

    return Prediction(
        {"intent": head(intent), "urgency": head(urgency), "emotion": head(emotion)}, ""
    )


def test_conversations_are_found_on_time_late_or_by_the_turn_limit():
    rows = [
        # a: the first turn needs a person and is handed over at once
        row("a", 1, "complaint", "high", "dissatisfied"),
        row("a", 2, "greeting"),
        # b: the first turn needs a person (angry); kefu hands over one turn late
        row("b", 1, "refund_return", "medium", "angry"),
        row("b", 2, "refund_return", "medium", "dissatisfied"),
        # c: nobody needs a person; the 4th customer turn passes the turn limit
        row("c", "5", "payment"),  # out of order in the file, and read from text as a CSV gives
        row("c", 2, "product_info"),
        row("c", 3, "promotion"),
        row("c", 4, "invoice"),
        row("c", 6, None, "high", "angry"),  # no gold intent: routed, never counted as needing
        row("", 1, "complaint", "high", "angry"),  # no session: no conversation
    ]
    sessions = conversations_of(LabelledData("t", rows, []))
    assert list(sessions) == ["a", "b", "c"]
    assert [r.extra["turn"] for r in sessions["c"]] == [2, 3, 4, "5", 6]
    predictions = [
        predicted("complaint", "medium"),
        predicted("greeting"),
        predicted("other"),
        predicted("refund_return", "medium", "angry"),
        predicted("product_info"),
        predicted("promotion"),
        predicted("invoice"),
        predicted("payment"),
        predicted("other"),
    ]
    policy = RoutingPolicy.for_taxonomy(load_taxonomy())
    block = score_conversations(sessions, predictions, policy)
    assert block["conversations"] == 3 and block["turns"] == 9
    assert block["need_person"] == 2 and block["handed_over_for_content"] == 2
    assert block["precision"] == 1.0 and block["recall"] == 1.0
    assert block["on_time"] == 0.5  # b was handed over a turn after it needed a person
    assert block["handed_over"] == 3 and block["handed_over_rate"] == 1.0
    assert block["first_handover_turn_median"] == 2  # first hand-overs at turns 1, 2 and 4
    assert block["first_handover_reasons"] == {
        "complaint": 1,
        "angry": 1,
        "long_conversation": 1,
    }


def unsure(intent):
    """A prediction whose intent abstains: routed clarify, or human once clarifying failed."""
    prediction = predicted(intent)
    head = prediction.heads["intent"]
    prediction.heads["intent"] = HeadPrediction(head.label, head.name, 0.3, True, head.top)
    return prediction


def test_each_turn_is_routed_with_its_turn_number_earlier_intents_and_clarifications():
    rows = [
        # late: a log holding turns 5 and 6 only; turn 5 is past the turn limit (3)
        row("late", 5, "payment"),
        row("late", 6, "invoice"),
        # unsure: an abstained intent is no earlier intent, so payment is not repeated at turn 2
        row("unsure", 1, "payment"),
        row("unsure", 2, "payment"),
        # clarified: asked to choose once, unsure again: clarifying failed
        row("clarified", 1, "invoice"),
        row("clarified", 2, "invoice"),
    ]
    sessions = conversations_of(LabelledData("t", rows, []))
    predictions = [
        predicted("payment"),
        predicted("invoice"),
        unsure("payment"),
        predicted("payment"),
        unsure("invoice"),
        unsure("product_info"),
    ]
    # counting abstained turns alone would hand `clarified` over too: only clarifications do here
    policy = replace(RoutingPolicy.for_taxonomy(load_taxonomy()), after_abstained_turns=5)
    block = score_conversations(sessions, predictions, policy)
    assert block["handed_over"] == 2 and block["need_person"] == 0
    assert block["first_handover_reasons"] == {
        "long_conversation": 1,
        "low_confidence": 1,
        "clarification_failed": 1,
    }
    assert block["first_handover_turn_median"] == 5  # turns 2 and 5: the upper middle


def test_per_conversation_counts_the_first_hand_over_and_false_alarms_in_turn_order():
    rows = [
        # calm: needs nobody; kefu hands it over for a complaint, then again for anger
        row("calm", 1, "payment"),
        row("calm", 2, "payment"),
        # upset: the file holds turn 2 first; turn 1 needs a person and is handed over at once
        row("upset", 2, "greeting"),
        row("upset", 1, "complaint", "high", "angry"),
        row("upset", None, None),  # no turn number: after the numbered turns
    ]
    data = LabelledData("t", rows, [])
    assert [r.extra["turn"] for r in conversations_of(data)["upset"]] == [1, 2, None]
    predictions = [  # one per row of the file, in file order
        predicted("complaint"),
        predicted("payment", "low", "angry"),
        predicted("greeting"),
        predicted("complaint", "high", "angry"),
        predicted("greeting"),
    ]
    block = conversation_block(data, predictions, RoutingPolicy.for_taxonomy(load_taxonomy()))
    assert block is not None
    assert (block["need_person"], block["handed_over_for_content"]) == (1, 2)
    assert (block["precision"], block["recall"], block["on_time"]) == (0.5, 1.0, 1.0)
    assert block["first_handover_reasons"] == {"complaint": 2, "angry": 1}  # calm's 1st, upset's
    assert block["first_handover_turn_median"] == 1
