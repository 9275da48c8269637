"""Escalation as evaluation scores it: the policy's content rules on the gold labels against the
actions the deployment took (metrics.json's `escalation` block)."""


def test_escalation_precision_and_recall_count_the_right_messages():
    from kefu.serving.routing import Action, Decision, Reason
    from kefu.serving.routing_policy import RoutingPolicy
    from kefu.training.data.loader import LabelledData, LabelledRow
    from kefu.training.evaluation.escalation import escalation_block

    def row(text, intent, urgency, emotion):
        labels = {"intent": intent, "urgency": urgency, "emotion": emotion}
        return LabelledRow(text, text, labels, 1)

    def decided(action, reasons=()):
        return Decision("q", "P2", Action(action), list(reasons), [])

    rows = [
        row("我要投诉你们", "complaint", "high", "angry"),  # should go to a person: caught
        row("转人工", "human_agent", "medium", "neutral"),  # should go: missed (bot)
        row("在吗", "greeting", "low", "neutral"),  # should not: sent anyway (false alarm)
        row("发票开了吗", "invoice", "medium", "neutral"),  # should not: clarified
    ]
    decisions = [
        decided("human", [Reason.COMPLAINT]),
        decided("bot"),
        decided("human", [Reason.ANGRY]),
        decided("clarify", [Reason.LOW_CONFIDENCE]),
    ]
    from kefu.serving.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    policy = RoutingPolicy.for_taxonomy(taxonomy)
    result = escalation_block(LabelledData("t", rows, []), decisions, policy)
    assert (result["true_human"], result["predicted_human"]) == (2, 2)
    assert result["precision"] == 0.5 and result["recall"] == 0.5 and result["f1"] == 0.5
    assert result["actions"] == {"bot": 0.25, "clarify": 0.25, "human": 0.5}
    assert result["true_reasons"] == {"angry": 1, "complaint": 1, "human_requested": 1}
