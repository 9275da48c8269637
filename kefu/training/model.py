"""The three-head classifier: one shared BERT encoder, one linear head per taxonomy head.

Heads read the mean of the last hidden states over real tokens (the base model, m3e, was
trained with mean pooling, so its [CLS] vector carries less of the sentence).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertModel

from kefu.serving.bundle.schema import ONNX_OUTPUTS
from kefu.serving.taxonomy import HEADS
from kefu.training.packaged_model import BaseModelError
from kefu.training.sampling import IGNORE, EncodedSplit, collate


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


def load_classifier(
    base_model_dir: Path, head_sizes: Mapping[str, int], dropout: float = 0.1
) -> MultiHeadClassifier:
    """The pretrained encoder from `base_model_dir` with three new, randomly initialised heads.

    The pooler (if the checkpoint has one) is dropped: heads read mean-pooled states.
    """
    try:
        loaded: Any = BertModel.from_pretrained(
            str(base_model_dir), add_pooling_layer=False, output_loading_info=True
        )
        encoder, loading = loaded
    except Exception as exc:  # safetensors, torch and transformers each raise their own types
        raise BaseModelError(
            f"base model {base_model_dir}: its weights cannot be loaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    missing = sorted(loading["missing_keys"])
    if missing:  # weights of another architecture: the encoder would be random
        raise BaseModelError(
            f"base model {base_model_dir}: {len(missing)} encoder weights are missing from its "
            f"checkpoint (e.g. {missing[0]}); it is not a pretrained BERT encoder"
        )
    return MultiHeadClassifier(encoder, head_sizes, dropout)


class MultiHeadLoss(nn.Module):
    """Weighted sum over heads of cross-entropy; rows labelled IGNORE (-100) skip that head.

    A head whose batch has no labelled row adds nothing (plain CE would return NaN there).
    `class_weights[head]` (k,) counters imbalance; None means uniform.
    """

    def __init__(
        self,
        head_weights: Mapping[str, float],
        class_weights: Mapping[str, torch.Tensor | None] | None = None,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.head_weights = dict(head_weights)
        self.losses = nn.ModuleDict(
            {
                head: nn.CrossEntropyLoss(
                    weight=(class_weights or {}).get(head),
                    ignore_index=IGNORE,
                    label_smoothing=label_smoothing,
                )
                for head in HEADS
            }
        )

    def forward(
        self, logits: tuple[torch.Tensor, ...], labels: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss (scalar) and each head's unweighted loss (for logging)."""
        total = logits[0].new_zeros(())
        per_head = {}
        for head, head_logits in zip(HEADS, logits, strict=True):
            if self.head_weights[head] == 0 or not bool((labels[head] != IGNORE).any()):
                continue
            loss = self.losses[head](head_logits, labels[head])
            total = total + self.head_weights[head] * loss
            per_head[head] = float(loss.detach())
        return total, per_head


def class_weight_tensor(labels: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    """Per-class loss weights from label counts: none, sqrt (1/sqrt f) or balanced (1/f).

    Normalised to mean 1 over the classes present, so the loss keeps its scale; an absent
    class gets weight 0 (it has no rows to weigh anyway).
    """
    if mode == "none":
        return None
    counts = np.bincount(labels[labels != IGNORE], minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    power = 0.5 if mode == "sqrt" else 1.0
    weights[present] = counts[present] ** -power
    weights[present] /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)


@torch.no_grad()
def predict_logits(
    model: MultiHeadClassifier, split: EncodedSplit, batches: list[np.ndarray], pad_id: int
) -> dict[str, np.ndarray]:
    """Logits per head, (n, k) float32 in split row order, in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    out: dict[str, np.ndarray] = {}
    for rows in batches:
        logits = model(**collate(split, rows, pad_id))
        for head, head_logits in zip(HEADS, logits, strict=True):
            if head not in out:
                out[head] = np.zeros((len(split), head_logits.shape[1]), dtype=np.float32)
            out[head][rows] = head_logits.numpy()
    model.train(was_training)
    return out


def macro_f1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Macro-F1 of argmax(logits) over the classes that occur in labels or predictions.

    Rows labelled IGNORE are left out; with no labelled row the result is NaN.
    """
    from sklearn.metrics import f1_score

    keep = labels != IGNORE
    if not keep.any():
        return float("nan")
    predicted = logits[keep].argmax(axis=1)
    return float(f1_score(labels[keep], predicted, average="macro", zero_division=0))
