"""Labelled rows to token ids and label arrays, and the batches the training loop draws.

Ids come from serving's `TextEncoder`, so the model trains on exactly the ids it is served
with. Batches are padded to their own longest row (dynamic padding) and drawn from pools of
similar length: most messages are short, and padding a 10-token message to 128 would make a
CPU step several times slower for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from kefu.serving.length_batches import length_sorted_batches
from kefu.serving.taxonomy import HEADS, Taxonomy
from kefu.serving.tokenization import TextEncoder

IGNORE = -100  # label index of a row that has no label for a head (masked in the loss)


@dataclass
class EncodedSplit:
    """One split, ready for the model: ids with [CLS]/[SEP], and (n,) label indices per head."""

    texts: list[str]
    ids: list[list[int]]
    labels: dict[str, np.ndarray]  # int64, IGNORE where the row lacks the head's label
    weights: np.ndarray | None = None  # (n,) draws per epoch (train_weights); None = 1 each

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def rows_per_epoch(self) -> float:
        return float(self.weights.sum()) if self.weights is not None else float(len(self.ids))

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(row) for row in self.ids], dtype=np.int64)


def encode_split(
    texts: Sequence[str],
    labels: Sequence[Mapping[str, str | None]],
    encoder: TextEncoder,
    taxonomy: Taxonomy,
    weights: Sequence[float] | None = None,
) -> EncodedSplit:
    """Tokenise `texts` and map each row's label ids to the taxonomy's output order."""
    ids, _ = encoder.token_ids(list(texts))
    label_arrays = {}
    for head in HEADS:
        index = {label: i for i, label in enumerate(taxonomy.labels(head))}
        label_arrays[head] = np.array(
            [IGNORE if (label := row.get(head)) is None else index[label] for row in labels],
            dtype=np.int64,
        )
    row_weights = np.asarray(weights, dtype=np.float64) if weights is not None else None
    return EncodedSplit(list(texts), ids, label_arrays, row_weights)


def epoch_rows(n_rows: int, weights: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Row indices drawn for one epoch: row i floor(w_i) times, once more with chance frac(w_i).

    This is how `train_weights` mix corpora: a small real corpus drawn twice per epoch next to
    a large written one drawn half, without copying files; each epoch draws a new half.
    """
    if weights is None:
        return np.arange(n_rows)
    whole = np.floor(weights).astype(np.int64)
    extra = rng.random(n_rows) < (weights - whole)
    return np.repeat(np.arange(n_rows), whole + extra)


def training_batches(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    pool_batches: int = 50,
    weights: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Row indices per batch for one epoch: drawn by weight, shuffled, sorted within pools.

    A pool of `pool_batches * batch_size` random rows is sorted by length and cut into batches;
    the batch order is shuffled again, so the model does not see all short messages first.
    """
    drawn = epoch_rows(len(lengths), weights, rng)
    order = drawn[rng.permutation(len(drawn))]
    pool = batch_size * pool_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def prediction_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices per batch for prediction: sorted by length (least padding), all rows once."""
    return [np.array(rows) for rows in length_sorted_batches(lengths.tolist(), batch_size)]


def mixed_batches(n_rows: int, batch_size: int) -> list[np.ndarray]:
    """Row indices in file order: batches of mixed lengths, for checks that need padding."""
    return [np.arange(i, min(i + batch_size, n_rows)) for i in range(0, n_rows, batch_size)]


def collate(split: EncodedSplit, rows: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """Model inputs for `rows`, padded to the longest of them: three (batch, seq) int64."""
    width = max(len(split.ids[row]) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for out_row, row in enumerate(rows):
        ids = split.ids[row]
        input_ids[out_row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[out_row, : len(ids)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": torch.zeros_like(input_ids),
    }


def batch_labels(split: EncodedSplit, rows: np.ndarray) -> dict[str, torch.Tensor]:
    return {head: torch.from_numpy(split.labels[head][rows]) for head in HEADS}
