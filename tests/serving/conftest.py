"""Fixtures of the serving tests: the tiny bundle as read for serving, the policy it ships
(tests/serving/batch/conftest.py has fixtures of the same names for its own runs), and a copy
of its folder for a test to change."""

from __future__ import annotations

import shutil

import pytest

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.routing_policy import RoutingPolicy


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return read_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def policy(bundle):
    return RoutingPolicy.for_bundle(bundle)


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    """A copy of the tiny bundle a test may change."""
    target = tmp_path / "copy"
    shutil.copytree(tiny_bundle, target)
    return target
