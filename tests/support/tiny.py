"""A tiny randomly initialised bundle, built in seconds with no download.

Tests (and the serving and scoring tests in particular) need a real bundle: a real ONNX graph,
a real tokenizer.json, real labels. This builds one from a character vocabulary so that
nothing has to be fetched; its predictions are random, its format is exactly the real one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import BertModel

from kefu.serving.bundle.reader import Bundle
from kefu.serving.bundle.schema import HeadCalibration, Manifest
from kefu.serving.bundle.writer import write_bundle
from kefu.serving.taxonomy import HEADS, Taxonomy, load_taxonomy
from kefu.training.export import export_onnx, quantize_int8
from kefu.training.model import MultiHeadClassifier, tiny_bert_config

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BASIC_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,.!?:;()[]<>-_/@#%&*+=~'\"，。！？：；（）【】、…￥¥"


def char_tokenizer(texts: Iterable[str]) -> Tokenizer:
    """A BERT-style WordPiece tokenizer whose vocabulary is every character seen in `texts`."""
    chars = sorted({ch for text in texts for ch in text if not ch.isspace()} | set(BASIC_CHARS))
    vocab = {
        token: i
        for i, token in enumerate(SPECIAL_TOKENS + [c for c in chars if c not in SPECIAL_TOKENS])
    }
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, handle_chinese_chars=True)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Split("", "isolated")]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def build_tiny_bundle(
    out_dir: str | Path,
    texts: Iterable[str] = (),
    taxonomy: Taxonomy | None = None,
    seed: int = 0,
    max_length: int = 64,
    model_version: str = "tiny-0",
) -> Bundle:
    taxonomy = taxonomy or load_taxonomy()
    corpus = [*texts, *(label.name for label in taxonomy.intents)]
    torch.manual_seed(seed)
    tokenizer = char_tokenizer(corpus)
    encoder = BertModel(tiny_bert_config(tokenizer.get_vocab_size()), add_pooling_layer=False)
    model = MultiHeadClassifier(encoder, {head: len(taxonomy.labels(head)) for head in HEADS})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer.save(str(work / "tokenizer.json"))
        export_onnx(model, work / "fp32.onnx")
        quantize_int8(work / "fp32.onnx", work / "int8.onnx")
        return write_bundle(
            out_dir,
            manifest=Manifest(
                model_version=model_version, base_model="tiny-random-bert", max_length=max_length
            ),
            onnx_fp32=work / "fp32.onnx",
            onnx_int8=work / "int8.onnx",
            tokenizer_json=work / "tokenizer.json",
            taxonomy=taxonomy,
            calibration={head: HeadCalibration() for head in HEADS},
        )


def save_tiny_base_model(out_dir: str | Path, texts: Iterable[str] = (), seed: int = 0) -> Path:
    """A base-model directory (config, safetensors, tokenizer) like m3e-small's, tiny and random.

    `kefu train --base-model DIR` and the training tests use it to run the real training path
    (transformers loading, AutoTokenizer parity) in seconds without a download.
    """
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = char_tokenizer([*texts, *(label.name for label in load_taxonomy().intents)])
    BertModel(
        tiny_bert_config(tokenizer.get_vocab_size()), add_pooling_layer=False
    ).save_pretrained(out)
    special = dict(
        zip(
            ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"),
            SPECIAL_TOKENS,
            strict=True,
        )
    )
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special).save_pretrained(out)
    return out
