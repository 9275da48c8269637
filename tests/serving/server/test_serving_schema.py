"""The API as clients see it: security schemes, enums, offline /docs, caller metadata, and a
client generated from /openapi.json that talks to a real `kefu serve`."""

import enum
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support.serving import Server, copy_bundle, isolated_settings

from kefu.serving.server.app import create_app
from kefu.serving.taxonomy import PRIORITIES

API_KEY = "schema-key"


@pytest.fixture(scope="module")
def client(tiny_bundle):
    settings = isolated_settings(tiny_bundle, api_keys=[API_KEY], max_metadata_bytes=64)
    with TestClient(create_app(settings), headers={"X-API-Key": API_KEY}) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def openapi(client):
    return client.get("/openapi.json").json()


def test_each_credential_has_its_own_scheme_attached_only_where_it_applies(openapi):
    assert openapi["components"]["securitySchemes"] == {
        "ApiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "One of KEFU_API_KEYS; needed when they are set.",
        },
        "AdminToken": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Admin-Token",
            "description": "KEFU_ADMIN_TOKEN; admin endpoints are disabled without it.",
        },
    }
    security = {
        (path, method): operation.get("security")
        for path, operations in openapi["paths"].items()
        for method, operation in operations.items()
    }
    assert security == {
        ("/v1/classify", "post"): [{"ApiKey": []}],
        ("/v1/model", "get"): [{"ApiKey": []}],
        ("/v1/admin/reload", "post"): [{"AdminToken": []}],
        ("/healthz", "get"): None,
        ("/readyz", "get"): None,
        ("/metrics", "get"): None,
    }


def test_labels_are_enums_of_the_taxonomy(openapi, taxonomy):
    schemas = openapi["components"]["schemas"]
    for head, name in (("intent", "IntentId"), ("urgency", "UrgencyId"), ("emotion", "EmotionId")):
        assert schemas[name]["enum"] == list(taxonomy.labels(head))
        result = schemas[f"{head.capitalize()}Result"]["properties"]
        label = result["label"]
        if head == "intent":
            assert label["$ref"] == f"#/components/schemas/{name}"
        else:  # null when the model's head is untrained
            assert label["anyOf"] == [{"$ref": f"#/components/schemas/{name}"}, {"type": "null"}]
        assert result["top"]["items"]["$ref"] == f"#/components/schemas/{head.capitalize()}Top"
        top = schemas[f"{head.capitalize()}Top"]["properties"]
        assert top["label"]["$ref"] == f"#/components/schemas/{name}"
    message = schemas["MessageResult"]["properties"]
    assert message["intent"]["$ref"] == "#/components/schemas/IntentResult"
    assert list(PRIORITIES) == ["P0", "P1", "P2", "P3"]


def test_metadata_is_echoed_unchanged_per_message(client):
    session = {"session_id": "s-1", "n": [1, 2.5, None, True], "nested": {"a": "b"}}
    single = client.post("/v1/classify", json={"text": "在吗", "metadata": session}).json()
    assert single["results"][0]["metadata"] == session
    batch = client.post(
        "/v1/classify",
        json={"messages": [{"text": "在吗", "metadata": {"k": "v"}}, {"text": "转人工"}]},
    ).json()
    assert batch["results"][0]["metadata"] == {"k": "v"}
    assert "metadata" not in batch["results"][1]  # not sent, not answered


def test_metadata_is_size_capped_and_belongs_to_messages(client):
    too_big = client.post(
        "/v1/classify", json={"messages": [{"text": "在吗", "metadata": {"k": "v" * 100}}]}
    )
    assert too_big.status_code == 422
    assert too_big.json()["error"] == {
        "code": "metadata_too_large",
        "message": "messages[0].metadata is 108 bytes as JSON; the limit is 64 "
        "(KEFU_MAX_METADATA_BYTES); keep ids and references there, not message data",
        "field": "messages[0].metadata",
    }
    not_object = client.post("/v1/classify", json={"text": "在吗", "metadata": [1]})
    assert (not_object.status_code, not_object.json()["error"]["field"]) == (422, "metadata")
    both = client.post("/v1/classify", json={"messages": [{"text": "a"}], "metadata": {}})
    assert (both.status_code, both.json()["error"]["code"]) == (422, "ambiguous_request")


def test_metadata_of_exactly_the_limit_is_accepted(client):
    at_limit = {"k": "v" * 56}  # {"k":"vv...v"}: 64 bytes as compact JSON
    accepted = client.post("/v1/classify", json={"text": "在吗", "metadata": at_limit})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["results"][0]["metadata"] == at_limit
    over = client.post("/v1/classify", json={"text": "在吗", "metadata": {"k": "v" * 57}})
    assert over.json()["error"]["message"].startswith("metadata is 65 bytes as JSON")


def test_model_info_holds_no_filesystem_path(client, tiny_bundle):
    info = client.get("/v1/model")
    assert info.json()["bundle"] == tiny_bundle.name
    assert str(tiny_bundle.parent) not in info.text
    assert info.json()["policy"]["source"] == "bundle"


def test_the_api_version_is_the_package_version(openapi):
    from importlib.metadata import version

    assert openapi["info"]["version"] == version("kefu")


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    work = tmp_path_factory.mktemp("schema")
    running = Server(
        copy_bundle(tiny_bundle, work / "bundle"),
        work / "server.log",
        env={"KEFU_API_KEYS": API_KEY, "KEFU_ADMIN_TOKEN": "schema-admin"},
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_docs_work_offline_every_asset_comes_from_the_server(server):
    page = httpx.get(f"{server.url}/docs", timeout=10)
    assert page.status_code == 200
    urls = set(re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text))
    urls |= set(re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text))
    assert "/openapi.json" in urls and any(url.endswith("swagger-ui-bundle.js") for url in urls)
    for url in urls:
        assert url.startswith("/"), f"{url} is not served by kefu"
        asset = httpx.get(server.url + url, timeout=10)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
    assert "http://" not in page.text and "https://" not in page.text.replace(
        "https://swagger.io", ""
    )


def test_a_client_generated_from_openapi_sends_the_right_header_and_parses_answers(
    server, tmp_path
):
    schema = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(schema), encoding="utf-8")
    models_file = tmp_path / "kefu_client_models.py"
    generator = Path(sys.executable).with_name("datamodel-codegen")
    subprocess.run(
        [str(generator), "--input", str(spec), "--input-file-type", "openapi"]
        + ["--output", str(models_file), "--output-model-type", "pydantic_v2.BaseModel"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    module_spec = importlib.util.spec_from_file_location("kefu_client_models", models_file)
    models = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = models  # pydantic resolves the annotations through it
    module_spec.loader.exec_module(models)
    # one intent type: previous_intents refers to IntentId rather than holding its own enum
    intent_ids = {member.value for member in models.IntentId}
    intent_types = [
        value
        for value in vars(models).values()
        if isinstance(value, type)
        and issubclass(value, enum.Enum)
        and {member.value for member in value} == intent_ids
    ]
    assert intent_types == [models.IntentId]
    context = models.Context(previous_intents=["refund_return", None])
    assert context.previous_intents == [models.IntentId.refund_return, None]

    # what Swagger's Authorize and generated clients do: the operation's scheme names the header
    operation = schema["paths"]["/v1/classify"]["post"]
    (scheme_name,) = operation["security"][0]
    scheme = schema["components"]["securitySchemes"][scheme_name]
    assert (scheme["in"], scheme["name"]) == ("header", "X-API-Key")
    request = models.ClassifyRequest(
        messages=[models.Message(id="m1", text="退款怎么还没到账", metadata={"session_id": "s9"})]
    )
    response = httpx.post(
        f"{server.url}/v1/classify",
        content=request.model_dump_json(exclude_none=True),
        headers={"Content-Type": "application/json", scheme["name"]: API_KEY},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    parsed = models.ClassifyResponse.model_validate_json(response.content)
    result = parsed.results[0]
    assert result.id == "m1" and result.metadata == {"session_id": "s9"}
    assert isinstance(result.intent.label, models.IntentId)
    assert isinstance(result.urgency.top[0].label, models.UrgencyId)
    assert isinstance(result.emotion.label, models.EmotionId)

    admin = schema["components"]["securitySchemes"][
        next(iter(schema["paths"]["/v1/admin/reload"]["post"]["security"][0]))
    ]
    reload = httpx.post(
        f"{server.url}/v1/admin/reload",
        content=models.ReloadRequest().model_dump_json(exclude_none=True),
        headers={"Content-Type": "application/json", admin["name"]: "schema-admin"},
        timeout=60,
    )
    assert reload.status_code == 200
    assert models.ReloadResponse.model_validate_json(reload.content).model_version == "tiny-0"
