"""Predictions and policy files for the routing tests (helpers only, no tests here).

`prediction()` builds a `Prediction` from labels, without a model, so each routing rule can be
met exactly; `likely_urgent_and_upset()` is one whose second-best labels matter; `write_policy`
puts a policy YAML in a real file.
"""

from kefu.serving.classifier import HeadPrediction, Prediction
from kefu.serving.routing import Action

BOT, CLARIFY, HUMAN = Action.BOT, Action.CLARIFY, Action.HUMAN
# an unsure intent head's ranking: two intents over the default min_confidence 0.1, one under
TOP_INTENTS = [("logistics_status", 0.45), ("logistics_issue", 0.3), ("order_status", 0.05)]


def prediction(
    intent="logistics_status",
    urgency="medium",
    emotion="neutral",
    *,
    abstain=(),
    asks_for_human=False,
    top=None,
):
    heads = {
        head: HeadPrediction(label, label, 0.9, head in abstain, [(label, 0.9)])
        for head, label in (("intent", intent), ("urgency", urgency), ("emotion", emotion))
    }
    if top is not None:
        heads["intent"].top = top
    return Prediction(heads=heads, group="", asks_for_human=asks_for_human)


def write_policy(tmp_path, text):
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def likely_urgent_and_upset():
    """Best labels medium / anxious, but urgency high is nearly as likely: P(high) x P(neg) 0.38."""
    guess = prediction(urgency="medium", emotion="anxious")
    guess.urgency.top = [("medium", 0.5), ("high", 0.45), ("low", 0.05)]
    guess.emotion.top = [("anxious", 0.6), ("dissatisfied", 0.25), ("neutral", 0.15)]
    return guess
