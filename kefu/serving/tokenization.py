"""Text to model inputs with the `tokenizers` library: the one tokenisation path of kefu.

Training, export checks, serving and batch scoring all encode through `TextEncoder`, so the ids
the model was trained on are the ids it is served with. Long texts keep their head and their
tail: customers open with context ("订单[订单x]") and close with the request ("...怎么还没退款"),
so cutting only the end would drop the part that decides the intent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from kefu.serving.normalize import NORMALIZATION_VERSION, normalize_text

__all__ = ["EncodedBatch", "TextEncoder", "normalize_text"]

# Share of the content window kept from the start of a long text; the rest comes from its end.
HEAD_SHARE = 0.5


@dataclass
class EncodedBatch:
    """Arrays of shape (n, seq_len), int64, padded to the longest row of the batch."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    truncated: list[bool]

    def as_onnx_feed(self) -> dict[str, np.ndarray]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }

    def row_feeds(self) -> list[dict[str, np.ndarray]]:
        """One ONNX feed per row, (1, its own length): each row as if it were encoded alone."""
        feed = self.as_onnx_feed()
        lengths = self.attention_mask.sum(axis=1).tolist()
        return [
            {
                name: np.ascontiguousarray(values[row : row + 1, :length])
                for name, values in feed.items()
            }
            for row, length in enumerate(lengths)
        ]


class TextEncoder:
    """Encode texts to BERT inputs of at most `max_length` tokens, head+tail truncated."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_length: int = 128,
        normalization: int = NORMALIZATION_VERSION,
    ):
        if max_length < 4:
            raise ValueError(f"max_length must be >= 4, got {max_length}")
        self.tokenizer = tokenizer
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_length = max_length
        self.normalization = normalization  # a bundle's own version (see normalize.py)
        self.cls_id = self._token_id("[CLS]")
        self.sep_id = self._token_id("[SEP]")
        self.pad_id = self._token_id("[PAD]")

    @classmethod
    def from_file(
        cls,
        tokenizer_json: str | Path,
        max_length: int = 128,
        normalization: int = NORMALIZATION_VERSION,
    ) -> TextEncoder:
        return cls(Tokenizer.from_file(str(tokenizer_json)), max_length, normalization)

    def token_ids(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Per text: ids with [CLS]/[SEP], and whether head+tail truncation cut it."""
        encodings = self.tokenizer.encode_batch(
            [normalize_text(text, self.normalization) for text in texts],
            add_special_tokens=False,
        )
        window = self.max_length - 2
        head = int(window * HEAD_SHARE)
        rows, truncated = [], []
        for encoding in encodings:
            ids = encoding.ids
            cut = len(ids) > window
            if cut:
                ids = ids[:head] + ids[len(ids) - (window - head) :]
            rows.append([self.cls_id, *ids, self.sep_id])
            truncated.append(cut)
        return rows, truncated

    def encode(self, texts: list[str]) -> EncodedBatch:
        rows, truncated = self.token_ids(texts)
        width = max((len(row) for row in rows), default=2)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = row
            attention_mask[index, : len(row)] = 1
        return EncodedBatch(input_ids, attention_mask, np.zeros_like(input_ids), truncated)

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(
                f"tokenizer has no {token} token; a BERT WordPiece tokenizer is expected"
            )
        return token_id
