"""Shared fixtures: a tiny random-init bundle built once per test session (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from support.paths import REPO_ROOT, SAMPLE_TEXTS, SHARED  # noqa: F401  (re-exported)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    from support.tiny import build_tiny_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    build_tiny_bundle(out, SAMPLE_TEXTS)
    return out


@pytest.fixture(scope="session")
def taxonomy():
    from kefu.serving.taxonomy import load_taxonomy

    return load_taxonomy()
