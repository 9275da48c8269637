"""Export checks on a tiny random BERT: ONNX parity on padded batches, INT8, tokenizer parity."""

from pathlib import Path

import numpy as np
import pytest
import torch
from support.tiny import save_tiny_base_model
from transformers import BertModel

from kefu.serving.taxonomy import HEADS
from kefu.serving.tokenization import TextEncoder
from kefu.training.export import (
    ExportCheckError,
    Int8Result,
    check_onnx_parity,
    check_tokenizer_parity,
    compare_int8,
    export_onnx,
    onnx_logits,
    quantize_int8,
)
from kefu.training.model import MultiHeadClassifier
from kefu.training.sampling import encode_split, mixed_batches

TEXTS = [
    "在吗",
    "我的快递三天没动了，能不能帮忙催一下，明天要用",
    "退款",
    "人工",
    "[订单编号:[订单x]，订单金额:[金额x]] 这个单子怎么还没发货啊？？？",
    "ok",
    "你们卖假货，我要打12315投诉你们，太过分了，已经第三次问了还没人理",
    "发票开了没",
] * 3


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return save_tiny_base_model(tmp_path_factory.mktemp("base") / "tiny", TEXTS)


@pytest.fixture(scope="module")
def exported(base_dir, taxonomy, tmp_path_factory):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    encoder = BertModel.from_pretrained(str(base_dir))
    model = MultiHeadClassifier(encoder, {h: len(taxonomy.labels(h)) for h in HEADS}).eval()
    text_encoder = TextEncoder.from_file(base_dir / "tokenizer.json", max_length=16)
    rng = np.random.default_rng(0)
    labels = [{head: str(rng.choice(taxonomy.labels(head))) for head in HEADS} for _ in TEXTS]
    split = encode_split(TEXTS, labels, text_encoder, taxonomy)
    work = tmp_path_factory.mktemp("onnx")
    fp32 = export_onnx(model, work / "model.onnx")
    int8 = quantize_int8(fp32, work / "model.int8.onnx")
    return model, split, text_encoder, fp32, int8


def test_exported_graph_matches_torch_on_padded_mixed_length_batches(exported):
    model, split, text_encoder, fp32, _ = exported
    assert len(set(split.lengths[:8])) >= 3  # the first batch mixes lengths: rows are padded
    batches = mixed_batches(len(split), 8)
    onnx = onnx_logits(fp32, split, batches, text_encoder.pad_id)
    result = check_onnx_parity(model, onnx, split, batches, text_encoder.pad_id)
    assert result.max_abs_diff <= 1e-4
    assert result.argmax_mismatches == 0
    assert result.rows == len(TEXTS)


def test_a_row_gives_the_same_logits_alone_and_padded_in_a_batch(exported):
    _, split, text_encoder, fp32, _ = exported
    together = onnx_logits(fp32, split, [np.arange(len(split))], text_encoder.pad_id)
    alone = onnx_logits(
        fp32, split, [np.array([i]) for i in range(len(split))], text_encoder.pad_id
    )
    for head in HEADS:
        np.testing.assert_allclose(together[head], alone[head], atol=1e-5)


def test_parity_check_fails_loudly_when_the_graph_is_not_the_model(exported):
    model, split, text_encoder, fp32, _ = exported
    batches = mixed_batches(len(split), 64)
    onnx = onnx_logits(fp32, split, batches, text_encoder.pad_id)
    with torch.no_grad():
        model.heads["urgency"].bias += 0.5
    try:
        with pytest.raises(ExportCheckError, match=r"max \|logit diff\| 5.00e-01"):
            check_onnx_parity(model, onnx, split, batches, text_encoder.pad_id)
    finally:
        with torch.no_grad():
            model.heads["urgency"].bias -= 0.5


def test_int8_is_compared_head_by_head(exported):
    _, split, text_encoder, fp32, int8 = exported
    batches = mixed_batches(len(split), 64)
    result = compare_int8(
        onnx_logits(fp32, split, batches, text_encoder.pad_id),
        onnx_logits(int8, split, batches, text_encoder.pad_id),
        split.labels,
    )
    assert set(result.fp32_macro_f1) == set(result.int8_macro_f1) == set(HEADS)
    assert all(0 <= value <= 1 for value in result.int8_macro_f1.values())
    assert int8.stat().st_size < fp32.stat().st_size


def test_int8_tolerance_is_in_points_per_head():
    result = Int8Result(
        {"intent": 0.80, "urgency": 0.70, "emotion": 0.60},
        {"intent": 0.795, "urgency": 0.70, "emotion": 0.585},
    )
    assert result.drop_points["emotion"] == pytest.approx(1.5)
    assert not result.within(1.0)
    assert result.within(1.5 + 1e-9)


def test_tokenizer_parity_holds_including_head_and_tail_truncation(base_dir, exported):
    _, _, text_encoder, _, _ = exported
    _, truncated = text_encoder.token_ids(TEXTS)
    assert any(truncated) and not all(truncated)
    assert check_tokenizer_parity(base_dir, text_encoder, TEXTS) == len(TEXTS)
    # full-width letters are folded by serving's NFKC step on both sides
    assert check_tokenizer_parity(base_dir, text_encoder, ["ｏｋ１２３", "  空格  "]) == 2


def test_tokenizer_parity_fails_for_another_vocabulary(base_dir, tmp_path):
    other = save_tiny_base_model(tmp_path / "other", ["完全不同的字表"])
    wrong = TextEncoder.from_file(other / "tokenizer.json", max_length=16)
    with pytest.raises(ExportCheckError, match="tokenizer parity failed on text 0"):
        check_tokenizer_parity(base_dir, wrong, TEXTS)
    long_text = "我的快递三天没动了" * 8
    with pytest.raises(ExportCheckError) as failed:
        check_tokenizer_parity(base_dir, wrong, [long_text])
    # the text quoted whole-character-wise and marked as cut, not its first 40 characters bare
    assert f"on text 0 ('{long_text[:38]}…): " in str(failed.value)
