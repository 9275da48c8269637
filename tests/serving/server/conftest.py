"""Fixtures of the server tests: a test client of the app as `kefu serve` starts it by default."""

import pytest
from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.serving.server.app import create_app


@pytest.fixture(scope="module")
def client(tiny_bundle):
    """One app per test module, with settings isolated from the caller's KEFU_* variables; a
    module that needs other settings defines its own `client`."""
    with TestClient(create_app(isolated_settings(tiny_bundle))) as test_client:
        yield test_client
