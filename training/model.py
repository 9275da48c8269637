"""The three-head classifier: one shared BERT encoder, one linear head per taxonomy head.

Heads read the mean of the last hidden states over real tokens (the base model, m3e, was
trained with mean pooling, so its [CLS] vector carries less of the sentence).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from transformers import BertConfig, BertModel

from serving.bundle import ONNX_OUTPUTS
from serving.taxonomy import HEADS


class MultiHeadClassifier(nn.Module):
    def __init__(self, encoder: BertModel, head_sizes: Mapping[str, int], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({head: nn.Linear(hidden, head_sizes[head]) for head in HEADS})

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Inputs (batch, seq) int64; returns logits per head in HEADS order, each (batch, k)."""
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        pooled = self.dropout(pooled)
        return tuple(self.heads[head](pooled) for head in HEADS)

    @property
    def output_names(self) -> list[str]:
        return [ONNX_OUTPUTS[head] for head in HEADS]


def tiny_bert_config(vocab_size: int) -> BertConfig:
    """A randomly initialised BERT small enough for unit tests (seconds on a CPU)."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
