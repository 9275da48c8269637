"""Serving settings from KEFU_* variables, their validation, and start-up refusal of a bad policy."""

import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.serving import isolated_settings

from kefu.errors import ConfigError, PolicyError
from kefu.serving.server.app import create_app
from kefu.serving.settings import Settings, load_settings


@pytest.fixture
def env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("KEFU_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_defaults(env):
    settings = Settings()
    assert (settings.max_batch, settings.top_k, settings.max_text_chars) == (64, 3, 20_000)
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.api_keys == [] and settings.admin_token is None and settings.log_text == "off"
    assert (settings.keep_alive_seconds, settings.head_timeout_seconds) == (5, 10.0)


def test_values_come_from_kefu_variables(env):
    env.setenv("KEFU_BUNDLE", "/models/v3")
    env.setenv("KEFU_VARIANT", "int8")
    env.setenv("KEFU_API_KEYS", "alpha, beta,,")
    env.setenv("KEFU_ADMIN_TOKEN", "root")
    env.setenv("KEFU_THRESHOLDS", '{"intent": {"threshold": 0.4, "margin": 0.05}}')
    env.setenv("KEFU_LOG_TEXT", "true")
    env.setenv("KEFU_WORKERS", "2")
    settings = Settings()
    assert settings.bundle == Path("/models/v3")
    assert settings.variant == "int8"
    assert [key.get_secret_value() for key in settings.api_keys] == ["alpha", "beta"]
    assert settings.admin_token.get_secret_value() == "root"
    assert settings.thresholds == {"intent": {"threshold": 0.4, "margin": 0.05}}
    assert settings.log_text == "raw"  # true is the raw text, as before
    assert "alpha" not in repr(settings) and "root" not in repr(settings)


def test_an_empty_variable_leaves_its_default(env):
    for name in ("KEFU_BUNDLE", "KEFU_POLICY", "KEFU_HOST", "KEFU_VARIANT", "KEFU_MAX_BATCH"):
        env.setenv(name, "")
    settings = load_settings()
    assert (settings.bundle, settings.policy, settings.host) == (
        Path("models/default"),
        None,
        "127.0.0.1",
    )
    assert (settings.variant, settings.max_batch) == (None, 64)


def test_a_log_level_is_read_in_any_case(env):
    env.setenv("KEFU_LOG_LEVEL", "WARNING")
    assert load_settings().log_level == "warning"
    assert load_settings(log_level="Debug").log_level == "debug"


def test_env_round_trip_rebuilds_the_same_settings_in_a_worker(env):
    original = load_settings(
        bundle="b",
        variant="int8",
        api_keys=["k1", "k2"],
        admin_token="t",
        thresholds={"emotion": {"margin": 0.1}},
        top_k=2,
        log_text=True,
    )
    for key, value in original.env().items():
        env.setenv(key, value)
    assert Settings() == original


def test_ort_threads_share_the_cores_between_workers(env):
    cores = os.cpu_count() or 1
    assert Settings(workers=1).threads_per_worker == cores
    assert Settings(workers=cores * 2).threads_per_worker == 1
    assert Settings(ort_threads=3, workers=2).threads_per_worker == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"variant": "fp16"},
            "KEFU_VARIANT (variant): Input should be 'fp32' or 'int8'; found 'fp16'",
        ),
        (
            {"max_batch": 0},
            "KEFU_MAX_BATCH (max_batch): Input should be greater than or equal to 1; found 0",
        ),
        ({"queue_size": 8}, "KEFU_QUEUE_SIZE (8) must be >= KEFU_MAX_BATCH (64)"),
        (
            {"head_timeout_seconds": "inf"},
            "KEFU_HEAD_TIMEOUT_SECONDS (head_timeout_seconds): Input should be a finite number; "
            "found 'inf'",
        ),
        (
            {"drain_seconds": float("inf")},
            "KEFU_DRAIN_SECONDS (drain_seconds): Input should be a finite number; found inf",
        ),
        ({"thresholds": {"sentiment": {"threshold": 0.5}}}, "unknown head 'sentiment'"),
        ({"thresholds": {"intent": {"temperature": 2.0}}}, "intent: unknown key 'temperature'"),
        (
            {"thresholds": {"intent": {"threshold": 1.5}}},
            "intent.threshold must be within [0, 1], got 1.5",
        ),
        ({"workers": 0}, "KEFU_WORKERS (workers)"),
        (
            {"head_timeout_seconds": 0},
            "KEFU_HEAD_TIMEOUT_SECONDS (head_timeout_seconds): Input should be greater than 0; "
            "found 0",
        ),
    ],
)
def test_bad_settings_name_the_variable_and_the_value(env, overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    assert message in str(caught.value)


def test_secrets_are_hidden_in_setting_errors(env):
    env.setenv("KEFU_ADMIN_TOKEN", "x")
    with pytest.raises(ConfigError) as caught:
        load_settings(api_keys=12345)
    assert "12345" not in str(caught.value)


def test_a_rule_over_several_settings_shows_no_secret(env):
    env.setenv("KEFU_ADMIN_TOKEN", "s3cr3t-admin")
    env.setenv("KEFU_API_KEYS", "supersecret")
    env.setenv("KEFU_MAX_BATCH", "500")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "KEFU_QUEUE_SIZE (256) must be >= KEFU_MAX_BATCH (500)" in str(caught.value)
    assert "s3cr3t" not in str(caught.value) and "supersecret" not in str(caught.value)


def test_an_unknown_kefu_variable_is_refused_with_a_suggestion(env):
    env.setenv("KEFU_MAX_BATH", "5")
    with pytest.raises(
        ConfigError, match="unknown variable KEFU_MAX_BATH; did you mean KEFU_MAX_BATCH"
    ):
        load_settings()
    env.delenv("KEFU_MAX_BATH")
    env.setenv("kefu_max_bath", "5")  # pydantic-settings reads any case, so the check does too
    with pytest.raises(
        ConfigError, match="unknown variable kefu_max_bath; did you mean KEFU_MAX_BATCH"
    ):
        load_settings()
    env.delenv("kefu_max_bath")
    env.setenv("KEFU_SHARED_MODELS", "/models")  # read by other commands: known
    assert load_settings().max_batch == 64
    env.setenv("kefu_cache", "/tmp/cache")  # read with os.environ, as written: upper case only
    with pytest.raises(ConfigError, match="write kefu_cache as KEFU_CACHE"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "KEFU_THRESHOLDS",
            "notjson",
            "KEFU_THRESHOLDS (thresholds): cannot be read (Expecting value: line 1 column 1 "
            '(char 0)); it takes JSON, e.g. {"intent": {"threshold": 0.5, "margin": 0.05}}',
        ),
        (  # JSON keeps the last of a repeated key: the first head's values were dropped unseen
            "KEFU_THRESHOLDS",
            '{"intent": {"threshold": 0.5}, "intent": {"margin": 0.1}}',
            "KEFU_THRESHOLDS (thresholds): cannot be read (['intent'] given twice in one object; "
            "give each once)",
        ),
        (  # read as 1.0, every answer of the head abstained
            "KEFU_THRESHOLDS",
            '{"intent": {"threshold": true}}',
            "KEFU_THRESHOLDS (thresholds.intent.threshold): Input should be a valid number; "
            "found True",
        ),
        (  # read as no key: an open API
            "KEFU_API_KEYS",
            " , ,",
            "KEFU_API_KEYS (api_keys): holds commas and spaces but no key, which would leave the "
            "API open; give comma-separated keys, or leave it unset for no keys; found <hidden>",
        ),
    ],
)
def test_a_value_that_cannot_be_read_is_one_line_naming_the_variable(env, name, value, message):
    env.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings()


def test_a_whole_number_is_a_threshold(env):
    env.setenv("KEFU_THRESHOLDS", '{"intent": {"threshold": 1, "margin": 0.05}}')
    assert load_settings().thresholds == {"intent": {"threshold": 1.0, "margin": 0.05}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00bad", r"is not UTF-8 text \(byte 0\)"),
        (None, "cannot be read: Is a directory"),
        (b"rules:\n  a: [\n", "is not valid YAML: while parsing a flow node"),
    ],
)
def test_an_unreadable_policy_file_is_one_line(tmp_path, content, message):
    from kefu.serving.policy_files import read_policy_file

    path = tmp_path / "policy.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(PolicyError, match=message) as caught:
        read_policy_file(path)
    assert "\n" not in str(caught.value)


def test_the_workers_metrics_folder_must_exist_and_starts_empty(tmp_path):
    from kefu.cli.serve import prepare_metrics_dir

    with pytest.raises(ConfigError, match="is not a writable directory"):
        prepare_metrics_dir(tmp_path / "missing")
    (tmp_path / "counter_123.db").write_bytes(b"old run")
    (tmp_path / "gauge_livesum_123.db").write_bytes(b"old run")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "inventory.db").write_bytes(b"someone else's")
    prepare_metrics_dir(tmp_path, empty=False)  # one worker: the folder may be in use
    assert len(list(tmp_path.iterdir())) == 4
    prepare_metrics_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.db", "notes.txt"]


def test_a_bad_policy_file_stops_start_up_naming_the_problem(tiny_bundle, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("escalate_intents: [complaint, refund]\n", encoding="utf-8")
    app = create_app(isolated_settings(tiny_bundle, policy=policy))
    with (
        pytest.raises(
            PolicyError, match=r"policy.yaml: escalate_intents has unknown intent ids \['refund'\]"
        ),
        TestClient(app),
    ):
        pass


def test_a_good_policy_file_overrides_the_bundle_policy(tiny_bundle, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("max_turns: 10\n", encoding="utf-8")
    with TestClient(create_app(isolated_settings(tiny_bundle, policy=policy))) as client:
        info = client.get("/v1/model").json()["policy"]
        reasons = client.post("/v1/classify", json={"text": "在吗", "context": {"turn": 8}}).json()
    assert (info["rules"]["long_conversation"]["max_turns"], info["source"]) == (
        10,
        policy.name,  # a name, not a path
    )
    assert "long_conversation" not in reasons["results"][0]["route"]["reasons"]
