"""Fixtures of the training tests: learnable labelled files, a tiny base model, one trained bundle."""

import json
from pathlib import Path

import pytest
from support.tiny import save_tiny_base_model
from support.training import labelled_rows, tiny_config, write_jsonl

from kefu.training.train import train


@pytest.fixture(scope="module")
def data_dir(taxonomy, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_jsonl(folder / "train.jsonl", labelled_rows(taxonomy, 6, "t"))
    write_jsonl(folder / "dev.jsonl", labelled_rows(taxonomy, 2, "d"))
    return folder


@pytest.fixture(scope="module")
def base_dir(data_dir, tmp_path_factory) -> Path:
    texts = [
        json.loads(line)["text"]
        for name in ("train.jsonl", "dev.jsonl")
        for line in (data_dir / name).read_text().splitlines()
    ]
    return save_tiny_base_model(tmp_path_factory.mktemp("base") / "tiny", texts)


@pytest.fixture(scope="module")
def trained(data_dir, base_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    # the opt-in lexical blend, so the tests of the shared bundle cover the graph it builds; the
    # default (no blend) is test_lexical.py's test_lexical_weight_zero_trains_the_encoder_alone
    config = tiny_config(data_dir, base_dir, lexical_weight=0.3)
    result = train(config, out, log=lambda line: None, show_progress=False)
    return config, out, result
