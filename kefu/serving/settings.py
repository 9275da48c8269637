"""Serving settings: one pydantic-settings object, read from `KEFU_*` environment variables.

Usage: `Settings(bundle="models/default")` in tests, `Settings()` (environment only) in each
uvicorn worker. `create_app(settings)` receives it, so nothing else reads the environment, with
two exceptions that must exist before any settings object: `KEFU_TAXONOMY`, read once at import
to build the API's label enums (`server/label_enums.py`), and `PROMETHEUS_MULTIPROC_DIR`,
prometheus-client's own switch to multi-process metrics, which `kefu serve --workers N` sets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    StrictFloat,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kefu.close_words import close_words, did_you_mean
from kefu.errors import ConfigError
from kefu.serving.classifier import ort_threads
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS
from kefu.serving.taxonomy import HEADS

# Calibration keys a deployment may override per head; temperature stays what dev fitted.
THRESHOLD_KEYS = ("threshold", "margin")


class Settings(BaseSettings):
    # An empty variable (KEFU_POLICY= in a compose file whose value is unset) is no value, as for
    # the other commands' options: read, it made KEFU_BUNDLE and KEFU_POLICY the current folder
    # and KEFU_HOST every interface.
    model_config = SettingsConfigDict(
        env_prefix="KEFU_", extra="forbid", validate_default=True, env_ignore_empty=True
    )

    # Model
    bundle: Path = Path("models/default")  # bundle directory (kefu/serving/bundle/schema.py format)
    variant: Literal["fp32", "int8"] | None = None  # None: the bundle's default_variant
    # Model threads per worker: inference threads, each running whole ORT calls on one ORT
    # thread (model_holder.py says why); None: cores / workers
    ort_threads: int | None = Field(default=None, ge=1)
    policy: Path | None = None  # routing policy YAML overriding the bundle's policy.yaml
    # Per-head abstention overrides, e.g. KEFU_THRESHOLDS='{"intent": {"threshold": 0.5}}'
    # (StrictFloat: JSON's true is no threshold; lax, it was read as 1.0: every answer abstained)
    thresholds: Annotated[dict[str, dict[str, StrictFloat]], NoDecode] = Field(default_factory=dict)
    top_k: int = Field(default=3, ge=1)  # alternatives listed per head

    # HTTP server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)  # uvicorn worker processes, one model each
    # Connections and requests open at once per worker; above it uvicorn answers 503 at once.
    limit_concurrency: int = Field(default=1000, ge=1)
    keep_alive_seconds: int = Field(default=5, ge=1)  # idle kept-alive connection is closed after
    # The request head must arrive whole within this of the connection opening, or of its first
    # byte on a kept-alive connection (else 408 and closed; server/head_timeout.py)
    head_timeout_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    # The whole body must arrive within this after the head (408); these times are finite: an
    # infinite one switched the guard off and logged as Infinity, which is no JSON
    body_timeout_seconds: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    # SIGTERM: time for in-flight work to finish
    drain_seconds: float = Field(default=30.0, ge=0, allow_inf_nan=False)

    # Limits
    max_batch: int = Field(default=64, ge=1)  # messages per request (413 above)
    max_body_bytes: int = Field(default=1 << 20, ge=256)  # request body (413 above)
    max_text_chars: int = Field(
        default=DEFAULT_MAX_TEXT_CHARS, ge=1
    )  # per text (422; batch rejects)
    max_metadata_bytes: int = Field(default=1024, ge=0)  # per `metadata` object, as JSON (422)
    queue_size: int = Field(default=256, ge=1)  # messages waiting for the model (503 above)
    retry_after_seconds: int = Field(default=1, ge=1)  # Retry-After sent with a 503

    # Micro-batching: concurrent messages coalesce into one ORT call of up to batch_max_size,
    # waiting at most batch_max_wait_ms for company once concurrency has been seen.
    batch_max_size: int = Field(default=32, ge=1)
    batch_max_wait_ms: float = Field(default=2.0, ge=0, le=1000)

    # Access
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)  # comma-separated
    admin_token: SecretStr | None = None  # enables POST /v1/admin/reload

    # Logs
    # Message text in the access log: "off" (labels, masked ids and routing only), "masked"
    # (text with personal data masked, kefu/serving/masking.py) or "raw"; true means raw.
    log_text: Literal["off", "masked", "raw"] = "off"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            keys = [key.strip() for key in value.split(",") if key.strip()]
            if value.strip() and not keys:  # meant to set keys, and would leave the API open
                raise ValueError(
                    "holds commas and spaces but no key, which would leave the API open; "
                    "give comma-separated keys, or leave it unset for no keys"
                )
            return keys
        return value

    @field_validator("log_text", mode="before")
    @classmethod
    def _log_text_words(cls, value: object) -> object:
        if isinstance(value, bool):
            return "raw" if value else "off"
        if isinstance(value, str):
            word = value.strip().lower()
            return {
                "true": "raw",
                "1": "raw",
                "yes": "raw",
                "false": "off",
                "0": "off",
                "no": "off",
            }.get(word, word)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_any_case(cls, value: object) -> object:
        # Python's logging spells its levels INFO, WARNING: what an operator writes
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds_json(cls, value: object) -> object:
        """KEFU_THRESHOLDS' JSON, read here rather than by pydantic-settings, whose json.loads
        keeps the last of a repeated head: {"intent": {...}, "intent": {...}} lost the first."""
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value, object_pairs_hook=_without_repeated_keys)
        except ValueError as exc:  # JSONDecodeError included
            raise ValueError(
                f"cannot be read ({exc}); it takes JSON, e.g. "
                '{"intent": {"threshold": 0.5, "margin": 0.05}}'
            ) from None

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for head, rule in value.items():
            if head not in HEADS:
                raise ValueError(f"unknown head {head!r}; expected one of {list(HEADS)}")
            for key, number in rule.items():
                if key not in THRESHOLD_KEYS:
                    raise ValueError(
                        f"{head}: unknown key {key!r}; expected {list(THRESHOLD_KEYS)}"
                    )
                if not 0.0 <= number <= 1.0:
                    raise ValueError(f"{head}.{key} must be within [0, 1], got {number}")
        return value

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        if self.queue_size < self.max_batch:
            raise ValueError(
                f"KEFU_QUEUE_SIZE ({self.queue_size}) must be >= KEFU_MAX_BATCH "
                f"({self.max_batch}), or a full-size request could never be queued"
            )
        return self

    @property
    def threads_per_worker(self) -> int:
        """Model threads per worker: explicit, or the cores shared out between workers."""
        return ort_threads(self.workers, self.ort_threads)

    def env(self) -> dict[str, str]:
        """These settings as KEFU_* variables, so uvicorn worker processes rebuild them."""
        out: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            key = f"KEFU_{name.upper()}"
            if name == "api_keys":
                out[key] = ",".join(key_.get_secret_value() for key_ in self.api_keys)
            elif name == "admin_token" and self.admin_token is not None:
                out[key] = self.admin_token.get_secret_value()
            elif name == "thresholds":
                out[key] = json.dumps(value)
            else:
                out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


# KEFU_* variables that are not serving settings: the taxonomy (read at import), and the
# training, evaluation and model-cache folders other commands read
OTHER_VARIABLES = frozenset(
    {"KEFU_TAXONOMY", "KEFU_SHARED_MODELS", "KEFU_PUBLIC_DEV", "KEFU_CACHE"}
)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment plus explicit overrides; a bad value raises ConfigError,
    and so does an unknown KEFU_ variable: a typo (KEFU_MAX_BATH) would otherwise leave the
    default in force without a word."""
    check_variable_names(os.environ)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def _without_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object's members, refusing a key given twice (json.loads keeps the last)."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"{repeated} given twice in one object; give each once")
    return dict(pairs)


def check_variable_names(environ: Mapping[str, str]) -> None:
    known = {f"KEFU_{name.upper()}" for name in Settings.model_fields} | OTHER_VARIABLES
    for name in sorted(environ):  # pydantic-settings reads names in any case: so does this
        if name.upper() in OTHER_VARIABLES and name != name.upper():  # read as written: upper
            raise ConfigError(f"invalid settings: write {name} as {name.upper()}")
        if name.upper().startswith("KEFU_") and name.upper() not in known:
            suggestion = did_you_mean(close_words(name.upper(), sorted(known), limit=1))
            hint = f"; {suggestion}" if suggestion else ""
            raise ConfigError(
                f"invalid settings: unknown variable {name}{hint} (the settings are listed in "
                "the README, Settings)"
            )


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the KEFU_ variable, the value found and what is expected."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a rule over several settings: its message names them
            lines.append(message)  # the input is every setting, secrets included: not shown
            continue
        field = ".".join(str(part) for part in error["loc"])
        name = f"KEFU_{field.split('.')[0].upper()}"
        found = error.get("input")
        shown = "<hidden>" if field.startswith(("api_keys", "admin_token")) else repr(found)
        lines.append(f"{name} ({field}): {message}; found {shown}")
    return "invalid settings: " + "; ".join(lines)
