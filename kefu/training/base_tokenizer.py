"""The base model's tokenizer as kefu trains and serves it.

m3e-small ships bert-base-chinese's vocabulary, which holds no upper-case letters, with
`do_lower_case: false`: every word with a capital ("OK", "APP", "iPhone", "商品ID") becomes one
[UNK]. Where a vocabulary is uncased like this, the tokenizer lowercases (as bert-base-chinese
itself was pretrained); a cased vocabulary keeps its case. The bundle's `tokenizer.json` and its
`hf/` copy carry that choice, so serving and `transformers` users read text the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kefu.serving.bundle.schema import TOKENIZER


def load_base_tokenizer(base_model_dir: Path) -> Any:
    """`AutoTokenizer` of the base model, lowercasing when its vocabulary has no capitals."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    if getattr(tokenizer, "do_lower_case", True) or not vocabulary_is_uncased(
        tokenizer.get_vocab()
    ):
        return tokenizer
    return AutoTokenizer.from_pretrained(str(base_model_dir), do_lower_case=True)


def vocabulary_is_uncased(vocabulary: dict[str, int]) -> bool:
    """No token but the bracketed special ones ([UNK], <S>) holds an upper-case letter."""
    return not any(
        any(char.isupper() for char in token)
        for token in vocabulary
        if not (token[:1] in "[<" and token[-1:] in "]>")
    )


def base_tokenizer_json(base_model_dir: Path, work: Path) -> Path:
    """The tokenizer the bundle ships (its `TOKENIZER` file in `work`), as `load_base_tokenizer`
    has it."""
    target = work / TOKENIZER
    load_base_tokenizer(base_model_dir).backend_tokenizer.save(str(target))
    return target
