"""Hand-over per conversation (metrics.json's `conversations` block): each session routed turn by
turn with its context, scored against the content rules on its turns' gold labels."""

from kefu.serving.classifier import HeadPrediction, Prediction
from kefu.serving.routing_policy import RoutingPolicy
from kefu.serving.taxonomy import load_taxonomy
from kefu.training.data.loader import LabelledData, LabelledRow
from kefu.training.evaluation.conversations import conversations_of, score_conversations


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
