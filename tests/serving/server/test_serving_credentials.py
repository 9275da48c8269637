"""Who may call what: API keys on classify and /v1/model, none on probes and metrics, the
admin token on /v1/admin/reload; checked from the request head, before any body is read."""

import pytest
from fastapi.testclient import TestClient
from support.serving import error, isolated_settings

from kefu.serving.server.app import create_app

ADMIN = {"X-Admin-Token": "admin-secret"}


@pytest.fixture
def client(keyed_client):
    return keyed_client


UNAUTHORIZED = error("unauthorized", "missing or invalid X-API-Key header")


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "key-three"}, {"X-API-Key": ""}, {"X-API-Key": "key-one "}]
)
def test_classify_needs_a_valid_api_key(client, headers):
    response = client.post("/v1/classify", json={"text": "在吗"}, headers=headers)
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    assert client.get("/v1/model", headers=headers).status_code == 401


def test_every_configured_key_is_accepted(client):
    for key in ("key-one", "key-two"):
        assert (
            client.post(
                "/v1/classify", json={"text": "在吗"}, headers={"X-API-Key": key}
            ).status_code
            == 200
        )


@pytest.mark.parametrize(
    ("path", "name", "good"),
    [
        ("/v1/classify", "X-API-Key", "key-one"),
        ("/v1/admin/reload", "X-Admin-Token", "admin-secret"),
    ],
)
def test_a_credential_sent_twice_is_refused_whichever_copy_is_good(client, path, name, good):
    # proxies disagree on which copy wins, so neither order may pass
    for pair in ([good, "wrong"], ["wrong", good], [good, good]):
        headers = [(name, value) for value in pair]
        response = client.post(path, json={"text": "在吗"}, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")


def test_auth_is_checked_before_the_body_is_read(client):
    # Without a key, no body is parsed: invalid JSON, a body over KEFU_MAX_BODY_BYTES, a UTF-16
    # body and an unknown field all get the same 401, which tells the caller nothing.
    json_header = {"content-type": "application/json"}
    for body in (
        b"{",
        b"{" + b" " * (2 << 20) + b"}",
        '{"text": "x"}'.encode("utf-16"),
        b'{"x":1}',
    ):
        response = client.post("/v1/classify", content=body, headers=json_header)
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    reload = client.post("/v1/admin/reload", content=b"{", headers=json_header)
    assert (reload.status_code, reload.json()["error"]["code"]) == (401, "unauthorized")
    # with the key, the same bodies get what they deserve
    keyed = {**json_header, "X-API-Key": "key-one"}
    assert client.post("/v1/classify", content=b"{", headers=keyed).status_code == 400
    assert (
        client.post(
            "/v1/classify", content=b"{" + b" " * (2 << 20) + b"}", headers=keyed
        ).status_code
        == 413
    )


def test_probes_and_metrics_need_no_key(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200


def test_admin_is_disabled_without_a_token(tiny_bundle):
    with TestClient(create_app(isolated_settings(tiny_bundle))) as client:
        response = client.post("/v1/admin/reload", headers=ADMIN)
    assert (response.status_code, response.json()) == (
        403,
        error("forbidden", "admin endpoints are disabled; set KEFU_ADMIN_TOKEN to enable them"),
    )


@pytest.mark.parametrize("headers", [{}, {"X-Admin-Token": "wrong"}, {"X-API-Key": "admin-secret"}])
def test_reload_needs_the_admin_token(client, headers):
    response = client.post("/v1/admin/reload", headers=headers)
    assert (response.status_code, response.json()) == (
        401,
        error("unauthorized", "missing or invalid X-Admin-Token header"),
    )
