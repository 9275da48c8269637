"""Shared fixtures: a tiny random-init bundle built once per test session (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

SAMPLE_TEXTS = [
    "我的快递三天没动了",
    "退款怎么还没到账！！",
    "转人工",
    "在吗",
    "[订单编号:[订单x]，订单金额:[金额x]]",
    "发票开了没 ok 7天无理由 iPhone",
    "你们卖假货，我要打12315投诉你们",
]


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
