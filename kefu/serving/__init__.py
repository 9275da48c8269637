"""kefu's serving runtime, and its Python API: `from kefu.serving import Classifier`.

    classifier = Classifier.from_bundle("models/default")
    prediction = classifier.predict(["我的快递三天没动了"])[0]
    policy = RoutingPolicy.for_bundle(classifier.bundle)
    decision = decide(prediction, ConversationContext(turn=2), policy)

The names below load on first use (PEP 562): every `import kefu.serving.<module>` runs this
file first, so importing the names here would bring numpy and ONNX Runtime into the training
code, the CLI and the server's light modules before they need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time, `__getattr__`
    from kefu.serving.bundle.reader import Bundle, read_bundle
    from kefu.serving.classifier import Classifier, HeadPrediction, Prediction
    from kefu.serving.deployment import Deployment, Triage
    from kefu.serving.routing import Action, ConversationContext, Decision, Reason, decide
    from kefu.serving.routing_policy import RoutingPolicy

_MODULES = {
    "Bundle": "kefu.serving.bundle.reader",
    "read_bundle": "kefu.serving.bundle.reader",
    "Classifier": "kefu.serving.classifier",
    "HeadPrediction": "kefu.serving.classifier",
    "Prediction": "kefu.serving.classifier",
    "Deployment": "kefu.serving.deployment",
    "Triage": "kefu.serving.deployment",
    "Action": "kefu.serving.routing",
    "ConversationContext": "kefu.serving.routing",
    "Decision": "kefu.serving.routing",
    "Reason": "kefu.serving.routing",
    "decide": "kefu.serving.routing",
    "RoutingPolicy": "kefu.serving.routing_policy",
}
__all__ = [  # the names of _MODULES, spelt out for linters and `from kefu.serving import *`
    "Action",
    "Bundle",
    "Classifier",
    "ConversationContext",
    "Decision",
    "Deployment",
    "HeadPrediction",
    "Prediction",
    "Reason",
    "RoutingPolicy",
    "Triage",
    "decide",
    "read_bundle",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
