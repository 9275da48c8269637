"""The bundle's architecture as torch modules and plain numbers, for the parts that need them.

The bundle ships ONNX only, and training keeps no torch checkpoint, so the PyTorch reference
and the training-speed part rebuild the architecture the bundle was trained from: the base
encoder (`base_model` in the bundle's training config) with new heads. A tiny test bundle
(`tests/support/tiny.py`) has no base model; its random tiny BERT is rebuilt from `tiny_bert_config`.
Speed depends on the architecture and the token counts, not on the weights' values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kefu.serving.bundle.reader import Bundle

TINY_BASE = "tiny-random-bert"  # the manifest base_model written by tests/support/tiny.py


@dataclass(frozen=True)
class Architecture:
    """What FLOPs depend on: a BERT encoder plus linear heads over the pooled state."""

    layers: int
    hidden: int
    intermediate: int
    heads_out: int  # summed output width of the three heads
    base_model: str


def bundle_base_model(bundle: Bundle) -> str:
    return str(bundle.training_config.get("base_model") or bundle.manifest.base_model)


def is_tiny(bundle: Bundle) -> bool:
    return bundle_base_model(bundle) == TINY_BASE


def base_model_dir(bundle: Bundle) -> Path:
    """Local directory of the bundle's base encoder (resolved and cached by base_model.py)."""
    from kefu.training.base_model import resolve_base_model

    return resolve_base_model(bundle_base_model(bundle)).path


def tokenizer_vocab_size(bundle: Bundle) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(bundle.tokenizer_path)).get_vocab_size()


def architecture(bundle: Bundle) -> Architecture:
    heads_out = sum(len(labels) for labels in bundle.labels.values())
    if is_tiny(bundle):
        from kefu.training.model import tiny_bert_config

        config = tiny_bert_config(tokenizer_vocab_size(bundle)).to_dict()
    else:
        config = json.loads((base_model_dir(bundle) / "config.json").read_text(encoding="utf-8"))
    return Architecture(
        layers=int(config["num_hidden_layers"]),
        hidden=int(config["hidden_size"]),
        intermediate=int(config["intermediate_size"]),
        heads_out=heads_out,
        base_model=bundle_base_model(bundle),
    )


def build_encoder(bundle: Bundle) -> tuple[Any, str]:
    """(BertModel, what its weights are): pretrained base weights, or random tiny ones."""
    from transformers import BertModel

    if is_tiny(bundle):
        from kefu.training.model import tiny_bert_config

        encoder = BertModel(tiny_bert_config(tokenizer_vocab_size(bundle)), add_pooling_layer=False)
        return encoder, "random tiny BERT (tiny test bundle)"
    from transformers.utils import logging

    # the load report lists the base model's unused pooler weights, expected here (mean pooling)
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    encoder = BertModel.from_pretrained(str(base_model_dir(bundle)), add_pooling_layer=False)
    return encoder, f"base encoder {bundle_base_model(bundle)} + random heads"
