"""Helpers shared by the serving tests: settings isolated from the caller's KEFU_* variables,
bundle copies with another model version, and a free localhost port."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from unittest import mock

from kefu.serving.bundle import MANIFEST
from kefu.serving.settings import Settings


def isolated_settings(bundle: Path, **overrides) -> Settings:
    """Settings for a test: one ORT thread, no wait, nothing taken from the environment."""
    values = {"bundle": bundle, "ort_threads": 1, "batch_max_wait_ms": 0.0, **overrides}
    clean = {key: value for key, value in os.environ.items() if not key.startswith("KEFU_")}
    with mock.patch.dict(os.environ, clean, clear=True):
        return Settings(**values)


def copy_bundle(source: Path, target: Path, model_version: str | None = None) -> Path:
    """A copy of a bundle; a new model_version keeps it valid (the manifest is not hashed)."""
    shutil.copytree(source, target)
    if model_version is not None:
        manifest_path = target / MANIFEST
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["model_version"] = model_version
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
