"""A triaged message as JSON: the server and `kefu classify` print this, so each field is pinned
here, values as the core computed them (no rounding) and every clarify candidate with its name."""

import pytest

from kefu.serving.classifier import Classifier
from kefu.serving.deployment import Triage
from kefu.serving.result_json import result_payload
from kefu.serving.routing import Action, Candidate, Decision, Reason


@pytest.fixture(scope="module")
def classifier(tiny_bundle):
    return Classifier.from_bundle(tiny_bundle, intra_op_threads=1)


def test_a_clarify_route_carries_every_candidate_with_its_name_and_exact_confidence(classifier):
    prediction = classifier.predict(["在吗 13812345678"], top_k=2)[0]
    names = classifier.bundle.label_names["intent"]
    candidates = [Candidate(label, names[label], p) for label, p in prediction.intent.top]
    decision = Decision("general", "normal", Action.CLARIFY, [Reason.LOW_CONFIDENCE], candidates)
    payload = result_payload("m1", Triage(prediction, decision))
    assert list(payload) == [
        *("id", "intent", "urgency", "emotion", "group", "route", "entities", "truncated")
    ]
    assert payload["route"] == {
        "queue": "general",
        "priority": "normal",
        "action": "clarify",
        "escalate": False,
        "reasons": ["low_confidence"],
        "candidates": [
            {"intent": label, "name": names[label], "confidence": p}
            for label, p in prediction.intent.top
        ],
    }
    assert len(payload["route"]["candidates"]) == 2
    for head in ("intent", "urgency", "emotion"):
        expected = prediction.heads[head]
        assert payload[head] == {
            "label": expected.label,
            "name": expected.name,
            "confidence": expected.confidence,
            "abstain": expected.abstain,
            "top": [{"label": label, "confidence": p} for label, p in expected.top],
        }
    assert (payload["id"], payload["group"], payload["truncated"]) == (
        "m1",
        prediction.group,
        False,
    )
    assert payload["entities"] == [{"kind": "phone", "text": "13812345678", "start": 3, "end": 14}]
