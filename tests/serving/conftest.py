"""Fixtures of the routing tests: the tiny bundle as read for serving, and the policy it ships
(tests/serving/batch/conftest.py has fixtures of the same names for its own runs)."""

from __future__ import annotations

import pytest

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.routing_policy import RoutingPolicy


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return read_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def policy(bundle):
    return RoutingPolicy.for_bundle(bundle)
