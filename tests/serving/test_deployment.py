"""The predict-then-route path: contexts go with their messages, one each."""

import re

import pytest

from kefu.serving.deployment import Deployment
from kefu.serving.routing import ConversationContext


@pytest.fixture(scope="module")
def deployment(tiny_bundle):
    return Deployment.load(tiny_bundle, threads=1)


@pytest.mark.parametrize("method", ["triage", "triage_in_batches"])
def test_contexts_must_match_the_messages_one_to_one(deployment, method):
    message = "2 contexts for 3 messages; pass one ConversationContext per message"
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(deployment, method)(["在吗", "转人工", "好"], [ConversationContext()] * 2)
