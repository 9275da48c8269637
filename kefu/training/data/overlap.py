"""Near-duplicates between splits: character 5-gram Jaccard, computed with sparse matrices.

A test message that nearly repeats a training message measures memory, not reading; the data
card reports the share of such rows and the builder drops them from dev and test.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from kefu.training.data.repeats import fold_text

NGRAM = 5
THRESHOLD = 0.8


def char_ngrams(text: str, n: int = NGRAM) -> set[str]:
    """Character n-grams of the text folded as repeats are (`fold_text`); short texts are one
    gram."""
    norm = fold_text(text)
    if len(norm) <= n:
        return {norm}
    return {norm[i : i + n] for i in range(len(norm) - n + 1)}


def _matrix(gram_sets: list[set[str]], vocab: dict[str, int]) -> sparse.csr_matrix:
    rows, cols = [], []
    for row, grams in enumerate(gram_sets):
        for gram in grams:
            rows.append(row)
            cols.append(vocab.setdefault(gram, len(vocab)))
    data = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(gram_sets), max(len(vocab), 1)))


def max_jaccard(queries: list[str], references: list[str], chunk: int = 512) -> np.ndarray:
    """For each query text, its highest 5-gram Jaccard with any reference text, shape (n,)."""
    if not queries or not references:
        return np.zeros(len(queries))
    vocab: dict[str, int] = {}
    ref_sets = [char_ngrams(text) for text in references]
    query_sets = [char_ngrams(text) for text in queries]
    ref_matrix = _matrix(ref_sets, vocab)
    query_matrix = _matrix(query_sets, vocab)
    ref_matrix.resize((ref_matrix.shape[0], len(vocab)))
    query_matrix.resize((query_matrix.shape[0], len(vocab)))
    ref_sizes = np.array([len(s) for s in ref_sets], dtype=np.float32)
    query_sizes = np.array([len(s) for s in query_sets], dtype=np.float32)
    best = np.zeros(len(queries))
    ref_t = ref_matrix.T.tocsc()
    for start in range(0, len(queries), chunk):
        inter = (query_matrix[start : start + chunk] @ ref_t).toarray()
        union = query_sizes[start : start + chunk, None] + ref_sizes[None, :] - inter
        best[start : start + chunk] = (inter / np.maximum(union, 1)).max(axis=1)
    return best


def near_duplicate_share(
    queries: list[str], references: list[str], threshold: float = THRESHOLD
) -> float:
    if not queries:
        return 0.0
    return float((max_jaccard(queries, references) >= threshold).mean())
