"""POST /v1/admin/reload: validate, warm, swap; keep the old model on any failure. (Who may
call it: test_serving_credentials.py.)"""

import json
import logging
import shutil
import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support.serving import Server, copy_bundle, isolated_settings

from kefu.serving.bundle import schema as bundle_format
from kefu.serving.routing import ConversationContext
from kefu.serving.server.app import create_app

ADMIN = {"X-Admin-Token": "admin-secret"}


def error(code, message, field=None):
    return {"error": {"code": code, "message": message, "field": field}}


@pytest.fixture
def client(keyed_client):
    return keyed_client


def version(client):
    response = client.post("/v1/classify", json={"text": "在吗"}, headers={"X-API-Key": "key-one"})
    assert response.status_code == 200
    return response.json()["model_version"]


def test_reload_swaps_in_a_new_bundle(client, tiny_bundle, tmp_path):
    new_bundle = copy_bundle(tiny_bundle, tmp_path / "new", model_version="tiny-1")
    response = client.post("/v1/admin/reload", json={"bundle": str(new_bundle)}, headers=ADMIN)
    body = response.json()
    assert response.status_code == 200
    assert {
        key: body[key] for key in ("model_version", "previous_model_version", "bundle", "variant")
    } == {
        "model_version": "tiny-1",
        "previous_model_version": "tiny-0",
        "bundle": str(new_bundle),
        "variant": "fp32",
    }
    assert body["load_seconds"] > 0
    assert version(client) == "tiny-1"
    info = client.get("/v1/model", headers={"X-API-Key": "key-one"}).json()
    assert (info["model_version"], info["bundle"]) == ("tiny-1", new_bundle.name)
    metrics = client.get("/metrics").text
    assert 'kefu_model_info{model_version="tiny-1",variant="fp32"} 1.0' in metrics
    assert 'model_version="tiny-0"' not in metrics  # the replaced model leaves the scrape


def test_reload_without_a_body_reloads_the_current_bundle_and_can_switch_variant(client):
    assert client.post("/v1/admin/reload", headers=ADMIN).json()["model_version"] == "tiny-0"
    switched = client.post("/v1/admin/reload", json={"variant": "int8"}, headers=ADMIN).json()
    assert switched["variant"] == "int8"
    assert client.get("/v1/model", headers={"X-API-Key": "key-one"}).json()["variant"] == "int8"
    info = model_info(client.get("/metrics").text)
    assert info == {(None, "tiny-0", "int8"): 1.0}  # the same model reloaded, then replaced


def model_info(scrape: str) -> dict[tuple[str | None, str, str], float]:
    """{(pid or None, model_version, variant): value} of the `kefu_model_info` series."""
    return {
        (
            sample.labels.get("pid"),
            sample.labels["model_version"],
            sample.labels["variant"],
        ): sample.value
        for family in text_string_to_metric_families(scrape)
        if family.name == "kefu_model_info"
        for sample in family.samples
    }


def test_a_replaced_model_leaves_the_scrape_of_a_server_with_shared_metric_files(
    tiny_bundle, tmp_path
):
    """One worker with the caller's PROMETHEUS_MULTIPROC_DIR (several workers refuse a reload):
    the worker's file keeps the replaced model's series, which the scrape must leave out."""
    new_bundle = copy_bundle(tiny_bundle, tmp_path / "new", model_version="tiny-1")
    (tmp_path / "metrics").mkdir()
    server = Server(
        tiny_bundle,
        tmp_path / "serve.log",
        env={
            "KEFU_ADMIN_TOKEN": "admin-secret",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        },
    )
    try:
        server.wait_ready()
        pid = str(server.process.pid)
        before = model_info(httpx.get(f"{server.url}/metrics").text)
        assert before == {(pid, "tiny-0", "fp32"): 1.0}
        reloaded = httpx.post(
            f"{server.url}/v1/admin/reload", json={"bundle": str(new_bundle)}, headers=ADMIN
        )
        assert reloaded.status_code == 200, reloaded.text
        scrape = httpx.get(f"{server.url}/metrics").text
        assert model_info(scrape) == {(pid, "tiny-1", "fp32"): 1.0}  # before: tiny-0 stayed, at 0.0
        # only replaced models are left out: other series at 0 stay 0, not "no data"
        assert "\nkefu_escalated_messages_total 0.0\n" in scrape
        assert "\nkefu_batch_size_count 0.0\n" in scrape
    finally:
        server.stop()


def corrupt_model(bundle_dir):
    with (bundle_dir / bundle_format.MODEL_FP32).open("ab") as handle:
        handle.write(b"tampered")


def rewrite_policy(bundle_dir, text):
    (bundle_dir / bundle_format.POLICY).write_text(text, encoding="utf-8")
    manifest_path = bundle_dir / bundle_format.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][bundle_format.POLICY] = bundle_format.sha256_file(
        bundle_dir / bundle_format.POLICY
    )
    manifest_path.write_text(json.dumps(manifest))


def test_a_sealed_but_unreadable_tokenizer_is_refused_not_a_500(client, tiny_bundle, tmp_path):
    broken = copy_bundle(tiny_bundle, tmp_path / "bad-tokenizer", model_version="tiny-bad")
    (broken / bundle_format.TOKENIZER).write_text("{}", encoding="utf-8")
    manifest_path = broken / bundle_format.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][bundle_format.TOKENIZER] = bundle_format.sha256_file(
        broken / bundle_format.TOKENIZER
    )
    manifest_path.write_text(json.dumps(manifest))
    response = client.post("/v1/admin/reload", json={"bundle": str(broken)}, headers=ADMIN)
    assert response.status_code == 422
    body = response.json()["error"]
    assert (body["code"], body["field"]) == ("bundle_invalid", "bundle")
    assert body["message"].startswith(f"bundle {broken}: tokenizer.json cannot be used: ")
    assert version(client) == "tiny-0"


def test_broken_bundle_is_refused_and_the_old_model_keeps_serving(client, tiny_bundle, tmp_path):
    broken = copy_bundle(tiny_bundle, tmp_path / "broken", model_version="tiny-broken")
    corrupt_model(broken)
    response = client.post("/v1/admin/reload", json={"bundle": str(broken)}, headers=ADMIN)
    assert response.status_code == 422
    body = response.json()["error"]
    assert (body["code"], body["field"]) == ("bundle_invalid", "bundle")
    assert body["message"].startswith(f"{broken}: sha256 of model.onnx is ")
    assert body["message"].endswith(
        "the file was changed or corrupted after export; re-export the bundle"
    )
    assert version(client) == "tiny-0"


@pytest.mark.parametrize(
    ("setup", "request_body", "code", "field", "message"),
    [
        (
            None,
            {"bundle": "/nonexistent/bundle"},
            "bundle_invalid",
            "bundle",
            "bundle directory /nonexistent/bundle does not exist; set the request's bundle to a "
            "bundle directory on the server, or leave bundle out to reload the current one",
        ),
        (
            "a_file",
            {},
            "bundle_invalid",
            "bundle",
            "manifest.json is a file, not a bundle directory; set the request's bundle to a "
            "bundle directory on the server, or leave bundle out to reload the current one",
        ),
        (
            "no_manifest",
            {},
            "bundle_invalid",
            "bundle",
            "target is not a kefu bundle: manifest.json is missing; set the request's bundle to "
            "a bundle directory on the server, or leave bundle out to reload the current one",
        ),
        (
            "hash",
            {},
            "bundle_invalid",
            "bundle",
            "the file was changed or corrupted after export; re-export the bundle",
        ),
        (
            "copy",
            {"variant": "fp16"},
            "invalid_input",
            "variant",
            "unknown model variant 'fp16'; expected one of ['fp32', 'int8']",
        ),
        ("policy", {}, "policy_invalid", "policy", "policy.yaml: unknown keys ['max_turn']"),
        (
            "no_int8",
            {"variant": "int8"},
            "bundle_invalid",
            "variant",
            "has no int8 model (model.int8.onnx), only fp32; set the request's variant to one it "
            "has",
        ),
    ],
)
def test_reload_errors_name_the_problem_and_keep_the_old_model(
    client, tiny_bundle, tmp_path, caplog, setup, request_body, code, field, message
):
    """The answer and the log line say the same, in the request's terms: never the command
    line's options and builds (the reader's advice when a command names the bundle)."""
    if setup:
        target = copy_bundle(tiny_bundle, tmp_path / "target", model_version="tiny-x")
        if setup == "a_file":
            target = target / bundle_format.MANIFEST
        if setup == "no_manifest":
            (target / bundle_format.MANIFEST).unlink()
        if setup == "hash":
            corrupt_model(target)
        if setup == "policy":
            rewrite_policy(target, "max_turn: 3\n")
        if setup == "no_int8":
            (target / bundle_format.MODEL_INT8).unlink()
            manifest_path = target / bundle_format.MANIFEST
            manifest = json.loads(manifest_path.read_text())
            del manifest["files"][bundle_format.MODEL_INT8]
            manifest_path.write_text(json.dumps(manifest))
        request_body = {"bundle": str(target), **request_body}
    caplog.set_level(logging.WARNING, logger="kefu.runtime")
    response = client.post("/v1/admin/reload", json=request_body, headers=ADMIN)
    assert response.status_code == 422
    body = response.json()["error"]
    assert (body["code"], body["field"]) == (code, field)
    assert message in body["message"]
    assert refusals_logged(caplog) == [body["message"]]
    for command_line in ("--bundle", "--variant", "KEFU_", "make model", "kefu train"):
        assert command_line not in body["message"]
    assert version(client) == "tiny-0"


def refusals_logged(caplog) -> list[str]:
    """The error of each "reload refused" line logged."""
    return [record.fields["error"] for record in caplog.records if record.msg == "reload refused"]


def test_a_reload_of_a_removed_serving_directory_says_so_in_the_requests_terms(
    client, tmp_path, caplog
):
    """The reader's advice (--bundle, KEFU_BUNDLE, make model) is the command line's; an API
    caller named the directory in `bundle`, or left it out to reload the serving one."""
    serving = tmp_path / "serving"
    shutil.rmtree(serving)
    caplog.set_level(logging.WARNING, logger="kefu.runtime")
    response = client.post("/v1/admin/reload", headers=ADMIN)
    message = (
        f"bundle directory {serving} does not exist; the serving model was loaded from it: set "
        "the request's bundle to a bundle directory on the server"
    )
    assert (response.status_code, response.json()) == (
        422,
        error("bundle_invalid", message, "bundle"),
    )
    assert refusals_logged(caplog) == [message]
    assert version(client) == "tiny-0"


def test_a_long_unknown_variant_is_quoted_cut(client):
    """The variant is the caller's: quoted within the 64 characters of any echo, then "…"."""
    response = client.post("/v1/admin/reload", json={"variant": "fp" * 5000}, headers=ADMIN)
    assert (response.status_code, response.json()) == (
        422,
        error(
            "invalid_input",
            f"unknown model variant '{'fp' * 19}…; expected one of ['fp32', 'int8']",
            "variant",
        ),
    )
    assert version(client) == "tiny-0"


def test_requests_during_a_reload_are_all_answered(client, tiny_bundle, tmp_path):
    new_bundle = copy_bundle(tiny_bundle, tmp_path / "new", model_version="tiny-2")
    statuses, versions = [], set()

    def hammer():
        for _ in range(15):
            response = client.post(
                "/v1/classify", json={"text": "在吗"}, headers={"X-API-Key": "key-two"}
            )
            statuses.append(response.status_code)
            versions.add(response.json().get("model_version"))

    thread = threading.Thread(target=hammer)
    thread.start()
    assert (
        client.post("/v1/admin/reload", json={"bundle": str(new_bundle)}, headers=ADMIN).status_code
        == 200
    )
    thread.join()
    assert set(statuses) == {200}
    assert versions <= {"tiny-0", "tiny-2"}
    assert version(client) == "tiny-2"


def test_reload_body_is_validated(client):
    response = client.post("/v1/admin/reload", json={"bundel": "x"}, headers=ADMIN)
    assert (response.status_code, response.json()) == (
        422,
        error(
            "unknown_field",
            "unknown field bundel; check the spelling against the API docs at /docs",
            "bundel",
        ),
    )


def test_a_request_that_raced_a_reload_is_served_by_the_new_model(client, tiny_bundle, tmp_path):
    holder = client.app.state.kefu.models
    old = holder.current
    new_bundle = copy_bundle(tiny_bundle, tmp_path / "new", model_version="tiny-3")
    assert (
        client.post("/v1/admin/reload", json={"bundle": str(new_bundle)}, headers=ADMIN).status_code
        == 200
    )
    served_by, predictions = client.portal.call(
        holder.triage, old, [("在吗", ConversationContext())]
    )  # old batcher is closed
    assert served_by.model_version == "tiny-3"
    assert len(predictions) == 1


def test_reload_is_refused_when_several_workers_run(tiny_bundle):
    settings = isolated_settings(tiny_bundle, admin_token="admin-secret", workers=2)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/admin/reload", headers=ADMIN)
    assert (response.status_code, response.json()) == (
        409,
        error(
            "reload_unsupported",
            "reload swaps the model of one worker process only, and 2 workers are running; "
            "restart the server (or run one worker per container) to change models",
        ),
    )


def test_reload_paths_are_checked(client):
    surrogate = client.post(
        "/v1/admin/reload",
        content=b'{"bundle": "/tmp/\\ud800"}',
        headers=ADMIN | {"content-type": "application/json"},
    )
    assert (surrogate.status_code, surrogate.json()) == (
        422,
        error(
            "invalid_text",
            "bundle contains a lone UTF-16 surrogate; send valid UTF-8 text",
            "bundle",
        ),
    )
    too_long = client.post("/v1/admin/reload", json={"bundle": "/" + "x" * 4096}, headers=ADMIN)
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (422, "too_long")
    assert version(client) == "tiny-0"
