"""Fixtures of the server tests: a test client of the app as `kefu serve` starts it by default."""

import pytest
from fastapi.testclient import TestClient
from support.serving import copy_bundle, isolated_settings

from kefu.serving.server.app import create_app


@pytest.fixture(scope="module")
def client(tiny_bundle):
    """One app per test module, with settings isolated from the caller's KEFU_* variables; a
    module that needs other settings defines its own `client`."""
    with TestClient(create_app(isolated_settings(tiny_bundle))) as test_client:
        yield test_client


@pytest.fixture
def keyed_client(tiny_bundle, tmp_path):
    """An app serving a copy of the tiny bundle (a reload may change it), with two API keys and
    the admin token `admin-secret`."""
    serving_copy = copy_bundle(tiny_bundle, tmp_path / "serving")
    settings = isolated_settings(
        serving_copy, admin_token="admin-secret", api_keys=["key-one", "key-two"]
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client
