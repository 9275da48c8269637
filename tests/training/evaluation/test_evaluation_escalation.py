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


def test_a_request_for_a_person_in_the_text_counts_and_rows_lacking_a_label_are_left_out():
    import numpy as np

    from kefu.serving.routing import Action, Decision, Reason
    from kefu.serving.routing_policy import RoutingPolicy
    from kefu.serving.taxonomy import load_taxonomy
    from kefu.training.data.loader import LabelledData, LabelledRow
    from kefu.training.evaluation.bootstrap import escalation_intervals
    from kefu.training.evaluation.escalation import escalation_block

    def row(number, text, emotion="neutral"):
        labels = {"intent": "logistics_status", "urgency": "low", "emotion": emotion}
        return LabelledRow(f"r{number}", text, labels, number, {"session": f"s{number // 3}"})

    # row 0 lacks its emotion label: left out; every third row asks for a person in words
    texts = ["快递到哪了", "快递到哪了", "帮我转人工"]
    rows = [row(n, texts[n % 3], None if n == 0 else "neutral") for n in range(30)]
    handed = [n % 3 == 2 or n % 5 == 0 for n in range(30)]
    decisions = [
        Decision(
            "q",
            "P2",
            Action.HUMAN if human else Action.BOT,
            [Reason.HUMAN_REQUESTED] if human else [],
            [],
        )
        for human in handed
    ]
    policy = RoutingPolicy.for_taxonomy(load_taxonomy())
    result = escalation_block(LabelledData("t", rows, []), decisions, policy)
    assert (result["n"], result["true_human"], result["predicted_human"]) == (29, 10, 13)
    assert result["true_reasons"] == {"human_requested": 10}
    assert (result["precision"], result["recall"]) == (10 / 13, 1.0)
    assert result["actions"] == {"bot": 16 / 29, "clarify": 0.0, "human": 13 / 29}
    # the rows kept are resampled by their own conversations: rows 1-2 share s0 with row 0
    units = np.array([n // 3 for n in range(1, 30)])
    true = [n % 3 == 2 for n in range(1, 30)]
    assert result["intervals"] == escalation_intervals(units, true, handed[1:])


def test_a_hand_over_that_finds_nobody_it_should_has_no_f1():
    from kefu.serving.routing import Action, Decision, Reason
    from kefu.serving.routing_policy import RoutingPolicy
    from kefu.serving.taxonomy import load_taxonomy
    from kefu.training.data.loader import LabelledData, LabelledRow
    from kefu.training.evaluation.escalation import escalation_block

    rows = [
        LabelledRow(
            "r1", "我要投诉", {"intent": "complaint", "urgency": "high", "emotion": "angry"}, 1
        ),
        LabelledRow(
            "r2", "在吗", {"intent": "greeting", "urgency": "low", "emotion": "neutral"}, 2
        ),
    ]
    decisions = [
        Decision("q", "P2", Action.BOT, [], []),
        Decision("q", "P2", Action.HUMAN, [Reason.ANGRY], []),
    ]
    policy = RoutingPolicy.for_taxonomy(load_taxonomy())
    result = escalation_block(LabelledData("t", rows, []), decisions, policy)
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, None)
