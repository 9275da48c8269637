"""A lexical second opinion inside the served graph: TF-IDF of token n-grams + logistic regression.

The fine-tuned encoder and a linear model over the message's token n-grams make different
mistakes: averaging their probabilities, the encoder weighted 0.7, gained on the real dev split
with each of three training seeds, where averaging two encoders did not help. The gain did not
carry to real test or to the public transfer sets, so it is opt-in (`lexical_weight`;
docs/experiments.md, run Z): for retraining where the traffic looks like the training data. The
linear model works on the ids the graph already receives (`input_ids`, [CLS] and [SEP]
included, so first and last tokens form n-grams of their own), and its whole pipeline is
standard ONNX operators appended to the exported graph (`lexical_graph.py`): serving keeps
running one ONNX Runtime session and needs no other library, and the graph's outputs keep their
names (they become blended log-probabilities, which the calibrated temperatures are then fitted
on like any other logits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from kefu.errors import KefuError
from kefu.serving.classifier import softmax
from kefu.training.evaluation.baseline import REGULARISATION_C, SEED  # sparse n-grams alike
from kefu.training.sampling import IGNORE, EncodedSplit

MAX_NGRAM = 3
MIN_DOCUMENT_FREQUENCY = 2  # an n-gram of a single training row is noise, and halves the pool
# keeps log() finite where a class has (numerically) no probability under either model
PROBABILITY_FLOOR = 1e-30
KEY_BITS = 20  # token ids below 2**20 - 1: three of them fit one int64 key (lexical_graph.py)


class LexicalCheckError(KefuError):
    """The lexical model cannot be fitted for this vocabulary, or the graph does not reproduce it."""

    code = "export_check_failed"


Ngram = tuple[int, ...]


def token_ngrams(ids: Sequence[int]) -> list[Ngram]:
    """Contiguous n-grams of 1..MAX_NGRAM ids: the features, counted per message."""
    return [
        tuple(ids[start : start + n])
        for n in range(1, MAX_NGRAM + 1)
        for start in range(len(ids) - n + 1)
    ]


@dataclass
class LexicalModel:
    """The fitted pipeline as plain arrays: what the graph computes, in taxonomy label order."""

    ngrams: list[Ngram]  # feature column -> n-gram
    idf: np.ndarray  # (V,) float32
    coef: dict[str, np.ndarray]  # head -> (V, n_labels) float32
    intercept: dict[str, np.ndarray]  # head -> (n_labels,) float32

    @property
    def heads(self) -> tuple[str, ...]:
        return tuple(self.coef)

    def predict_proba(self, rows: Iterable[Sequence[int]]) -> dict[str, np.ndarray]:
        """The reference computation in numpy, row by row, which the graph must match."""
        column = {ngram: index for index, ngram in enumerate(self.ngrams)}
        scores: dict[str, list[np.ndarray]] = {head: [] for head in self.heads}
        for ids in rows:
            counts = Counter(column[g] for g in token_ngrams(ids) if g in column)
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            values = (1 + np.log(tf)) * self.idf[columns]
            norm = np.linalg.norm(values)
            values = values / norm if norm > 0 else values
            for head in self.heads:
                scores[head].append(values @ self.coef[head][columns] + self.intercept[head])
        return {head: softmax(np.asarray(rows_scores)) for head, rows_scores in scores.items()}


def fit_lexical(
    split: EncodedSplit, label_counts: dict[str, int], heads: Sequence[str]
) -> LexicalModel | None:
    """Fit one vocabulary on every training row and one classifier per head on its labelled rows.

    Rows weigh what they weigh in training (`train_weights`), so the linear model sees the same
    mix of corpora as the encoder. A head whose training rows carry fewer than two labels gets
    no classifier; None when no head has one (nothing to blend).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    largest = max((max(ids) for ids in split.ids if ids), default=0)
    if largest >= (1 << KEY_BITS) - 1:
        raise LexicalCheckError(
            f"token id {largest} does not fit the lexical model's {KEY_BITS}-bit n-gram keys; "
            "train with lexical_weight=0 for a vocabulary this large"
        )
    weights = split.weights if split.weights is not None else np.ones(len(split))
    vectorizer = TfidfVectorizer(
        analyzer=token_ngrams, sublinear_tf=True, min_df=MIN_DOCUMENT_FREQUENCY
    )
    try:
        features = vectorizer.fit_transform(split.ids)
    except ValueError:  # no n-gram in two rows: a corpus this small has nothing to add
        return None
    ngrams: list[Ngram] = list(vectorizer.get_feature_names_out())
    coef, intercept = {}, {}
    for head in heads:
        labelled = np.flatnonzero(split.labels[head] != IGNORE)
        classes_seen = np.unique(split.labels[head][labelled])
        if len(classes_seen) < 2:
            continue
        classifier = LogisticRegression(
            C=REGULARISATION_C, solver="saga", max_iter=2000, random_state=SEED
        )
        classifier.fit(
            features[labelled], split.labels[head][labelled], sample_weight=weights[labelled]
        )
        # columns in taxonomy order; a label absent from training gets no probability
        size = label_counts[head]
        head_coef = np.zeros((len(ngrams), size), dtype=np.float32)
        head_intercept = np.full(size, np.log(PROBABILITY_FLOOR), dtype=np.float32)
        decision_coef, decision_intercept = classifier.coef_, classifier.intercept_
        if len(classifier.classes_) == 2:  # sklearn keeps one row for two classes
            decision_coef = np.vstack([-decision_coef / 2, decision_coef / 2])
            decision_intercept = np.array([-decision_intercept[0] / 2, decision_intercept[0] / 2])
        for row, label_index in enumerate(classifier.classes_):
            head_coef[:, label_index] = decision_coef[row]
            head_intercept[label_index] = decision_intercept[row]
        coef[head], intercept[head] = head_coef, head_intercept
    if not coef:
        return None
    idf = vectorizer.idf_.astype(np.float32)
    return LexicalModel(ngrams, idf, coef, intercept)
