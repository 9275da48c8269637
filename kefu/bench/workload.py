"""The messages every benchmark part uses: real texts, so the mix of message lengths is real.

Texts come from the seed test split (or any labelled file given with `--data`) and are sampled
with replacement under a fixed seed, so two runs time the same messages in the same order and
a 100,000-row scoring file keeps the test split's length distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kefu.errors import DataError
from kefu.serving.taxonomy import REPO_ROOT
from kefu.serving.tokenization import TextEncoder
from kefu.training.data.loader import LabelledData, load_labelled

DEFAULT_DATA = REPO_ROOT / "datasets" / "seed" / "test.jsonl"


@dataclass
class Workload:
    source: str
    data: LabelledData  # the labelled rows (accuracy scores against their labels)

    @property
    def texts(self) -> list[str]:
        return self.data.texts()

    def sample(self, n: int, seed: int = 0) -> list[str]:
        """`n` texts drawn with replacement (seeded): the file's length mix at any size."""
        texts = self.texts
        picks = np.random.default_rng(seed).integers(0, len(texts), size=n)
        return [texts[int(i)] for i in picks]

    def describe(self, encoder: TextEncoder) -> dict[str, float | int | str]:
        """Length statistics in characters and in model tokens ([CLS]/[SEP] included)."""
        tokens = token_counts(encoder, self.texts)
        chars = np.array([len(text) for text in self.texts])
        return {
            "source": self.source,
            "rows": len(self.texts),
            "mean_chars": float(chars.mean()),
            "mean_tokens": float(tokens.mean()),
            "p50_tokens": float(np.percentile(tokens, 50)),
            "p95_tokens": float(np.percentile(tokens, 95)),
            "max_tokens": int(tokens.max()),
            "max_length": encoder.max_length,
        }


def token_counts(encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """(n,) tokens per text after head+tail truncation, [CLS]/[SEP] included."""
    rows, _ = encoder.token_ids(texts)
    return np.array([len(row) for row in rows], dtype=np.int64)


def load_workload(data: Path | None = None) -> Workload:
    """The seed test split, or `data`; a missing or empty file raises DataError with the fix."""
    path = Path(data) if data is not None else DEFAULT_DATA
    if not path.is_file():
        fix = "pass --data FILE" if data is None else "check the path"
        raise DataError(
            f"benchmark texts: expected a labelled file at {path}, found nothing; "
            f"run `make data` to build the seed corpus or {fix}",
            file=str(path),
        )
    labelled = load_labelled(path)
    if not labelled.rows:
        raise DataError(f"benchmark texts: {path} has no usable rows", file=str(path))
    return Workload(str(path), labelled)


def length_sorted_batches(
    encoder: TextEncoder, texts: list[str], batch_size: int
) -> list[list[str]]:
    """Full batches of texts of similar token count, in a seeded random order."""
    lengths = token_counts(encoder, texts)
    ordered = [texts[int(i)] for i in np.argsort(lengths, kind="stable")]
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    batches = [batch for batch in batches if len(batch) == batch_size] or batches[:1]
    order = np.random.default_rng(0).permutation(len(batches))
    return [batches[int(i)] for i in order]
