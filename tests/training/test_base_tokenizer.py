"""An uncased vocabulary gets a lowercasing tokenizer: "OK" must not read as [UNK]."""

import json

import pytest

from kefu.serving.tokenization import TextEncoder
from kefu.training.base_tokenizer import (
    base_tokenizer_json,
    load_base_tokenizer,
    vocabulary_is_uncased,
)

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def bert_tokenizer_dir(path, words, do_lower_case=False):
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(SPECIAL + words) + "\n", encoding="utf-8")
    (path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": do_lower_case})
    )
    return path


@pytest.mark.parametrize(
    ("vocabulary", "uncased"),
    [
        (["[UNK]", "<S>", "ok", "##k", "好"], True),
        (["[UNK]", "OK", "好"], False),
        (["[UNK]", "iPhone"], False),
    ],
)
def test_a_vocabulary_is_uncased_when_only_special_tokens_hold_capitals(vocabulary, uncased):
    assert vocabulary_is_uncased({token: i for i, token in enumerate(vocabulary)}) is uncased


def test_an_uncased_vocabulary_is_read_lowercased_by_training_and_serving(tmp_path):
    base = bert_tokenizer_dir(tmp_path / "base", ["ok", "app", "好", "的"])
    assert load_base_tokenizer(base).tokenize("OK好的") == ["ok", "好", "的"]
    encoder = TextEncoder.from_file(base_tokenizer_json(base, tmp_path), 16)
    unk = encoder.tokenizer.token_to_id("[UNK]")
    ids = encoder.token_ids(["APP OK"])[0][0]
    assert unk not in ids
    assert ids == encoder.token_ids(["app ok"])[0][0]


def test_a_cased_vocabulary_keeps_its_case(tmp_path):
    base = bert_tokenizer_dir(tmp_path / "base", ["OK", "ok", "好"])
    tokenizer = load_base_tokenizer(base)
    assert tokenizer.tokenize("OK") == ["OK"]
    assert tokenizer.tokenize("Ok") == ["[UNK]"]
