"""The one inference core: `Classifier.from_bundle(dir).predict(texts)`.

The HTTP server, batch scoring and the benchmark call this and hold no model logic of their
own. Probabilities are temperature-scaled per head (fitted on dev at training time); a head
abstains when its top probability or its top-1/top-2 margin falls under the bundle's rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from kefu.errors import BundleError
from kefu.serving.bundle.reader import Bundle, read_bundle
from kefu.serving.bundle.schema import (
    ONNX_METADATA,
    ONNX_OUTPUTS,
    ROW_BY_ROW_VARIANTS,
    HeadCalibration,
)
from kefu.serving.entities import Entity, asks_for_human, find_entities
from kefu.serving.inputs import (
    checked_calibration_overrides,
    checked_count_or_none,
    checked_max_length,
    checked_texts,
    checked_top_k,
)
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS
from kefu.serving.taxonomy import HEADS
from kefu.serving.tokenization import EncodedBatch

# Texts per model call of `predict` and `predict_proba`: one call over a whole data frame pads
# every text to the longest and holds the attention of all of them at once (fp32, 128 tokens:
# some 4 MB a text, so 10,000 texts ran a 23 GB machine out of memory). A call of this many or
# fewer runs as one, as before (the server's micro-batches are smaller); the number is
# `triage_in_batches`' default batch.
PREDICT_CHUNK = 64


@dataclass
class HeadPrediction:
    label: str | None  # None for a head the bundle marks untrained (too few labels)
    name: str | None
    confidence: float | None
    abstain: bool  # always True for an untrained head: nothing to act on
    top: list[tuple[str, float]]  # (label, confidence), best first, as many as asked (top_k)
    trained: bool = True
    # Every label of the head, best first: what routing reads (clarify candidates, the
    # probability of high urgency and a negative emotion), so a route never depends on how many
    # labels the caller asked to see. Empty in predictions built by hand: routing reads `top`.
    ranked: list[tuple[str, float]] = field(default_factory=list, repr=False)

    @property
    def ranking(self) -> list[tuple[str, float]]:
        """The longest ranking this prediction holds: `ranked` if set, else `top`."""
        return self.ranked or self.top


@dataclass
class Prediction:
    heads: dict[str, HeadPrediction]
    group: str
    truncated: bool = False
    asks_for_human: bool = False
    entities: list[Entity] = field(default_factory=list)

    @property
    def intent(self) -> HeadPrediction:
        return self.heads["intent"]

    @property
    def urgency(self) -> HeadPrediction:
        return self.heads["urgency"]

    @property
    def emotion(self) -> HeadPrediction:
        return self.heads["emotion"]

    def as_plain(self) -> dict[str, Any]:
        """One flat row of JSON values (a data frame row): per head its label, name,
        confidence and abstain flag, then group, truncation, the request for a person and the
        entities. `Decision.as_plain()` holds the route's columns."""
        row: dict[str, Any] = {}
        for head, prediction in self.heads.items():
            row[head] = prediction.label
            row[f"{head}_name"] = prediction.name
            row[f"{head}_confidence"] = prediction.confidence
            row[f"{head}_abstain"] = prediction.abstain
        return row | {
            "group": self.group,
            "truncated": self.truncated,
            "asks_for_human": self.asks_for_human,
            "entities": [
                {"kind": entity.kind, "text": entity.text, "start": entity.start, "end": entity.end}
                for entity in self.entities
            ],
        }


def untrained_head() -> HeadPrediction:
    """What an untrained head says: no label, nothing to act on (routing skips it).

    A new one per message: predictions are mutable (`top` is a list), so one shared instance
    would carry a caller's change to one result into every other untrained result.
    """
    return HeadPrediction(None, None, None, True, [], trained=False)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of (n, k) logits divided by `temperature`."""
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def ort_threads(workers: int = 1, explicit: int | None = None) -> int:
    """ONNX Runtime intra-op threads per worker: explicit, else the cores shared out.

    Never ORT's default (all cores per session): several uvicorn workers, pool processes or
    Ray actors on one machine would each take every core and oversubscribe them.
    """
    return explicit or max(1, (os.cpu_count() or 1) // max(1, workers))


def make_session(model_path: Path, intra_op_threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with explicit thread counts (`ort_threads`)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = ort_threads(explicit=intra_op_threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for corrupt graphs
        raise BundleError(f"ONNX Runtime cannot load {model_path}: {exc}") from None


class Classifier:
    def __init__(
        self,
        bundle: Bundle,
        variant: str | None = None,
        intra_op_threads: int | None = None,
        lone_threads: int | None = None,
        calibration_overrides: Mapping[str, Mapping[str, float]] | None = None,
        max_length: int | None = None,
        max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS,
    ):
        """`max_text_chars`: longer texts are refused (`InputError`), as by the server at its
        default KEFU_MAX_TEXT_CHARS; None for no limit (labelled data, measured row by row)."""
        if not isinstance(bundle, Bundle):
            raise TypeError(
                f"Classifier takes a loaded Bundle, got {type(bundle).__name__}; load a bundle "
                "folder with Classifier.from_bundle(path)"
            )
        max_length = checked_max_length(max_length)
        thread_words = "ONNX Runtime threads", "the machine's cores"  # counts; None means
        intra_op_threads = checked_count_or_none(
            intra_op_threads, "intra_op_threads (Deployment: threads)", *thread_words
        )
        lone_threads = checked_count_or_none(lone_threads, "lone_threads", *thread_words)
        self.max_text_chars = checked_count_or_none(
            max_text_chars, "max_text_chars", "characters per text", "no limit"
        )
        overrides = checked_calibration_overrides(calibration_overrides)
        self.bundle = bundle
        self.variant = variant or bundle.manifest.default_variant
        self.session = make_session(bundle.model_path(self.variant), intra_op_threads)
        # A server runs one-thread calls side by side under load; a call made while the model
        # is otherwise idle (one client) may take every thread it was given: `logits(lone=True)`.
        wider = lone_threads is not None and lone_threads > ort_threads(explicit=intra_op_threads)
        self.lone_session = (
            make_session(bundle.model_path(self.variant), lone_threads) if wider else None
        )
        self.encoder = bundle.text_encoder(max_length)
        self.calibration: dict[str, HeadCalibration] = {
            head: replace(bundle.calibration[head], **overrides.get(head, {})) for head in HEADS
        }
        self._output_names = [ONNX_OUTPUTS[head] for head in HEADS]
        # a message's answer must not depend on what else is in its call
        # (bundle/schema.py, ROW_BY_ROW_VARIANTS)
        self.row_by_row = self.variant in ROW_BY_ROW_VARIANTS
        outputs = {output.name for output in self.session.get_outputs()}
        missing = set(self._output_names) - outputs
        if missing:
            raise BundleError(f"{bundle.path}: ONNX model lacks outputs {sorted(missing)}")
        self._check_output_widths()
        self._check_onnx_labels()
        if self.encoder.max_length > bundle.manifest.max_length:
            self._check_longest_input()

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, **kwargs: Any) -> Classifier:
        return cls(read_bundle(bundle_dir), **kwargs)

    @property
    def model_version(self) -> str:
        return self.bundle.manifest.model_version

    def logits(self, batch: EncodedBatch, lone: bool = False) -> dict[str, np.ndarray]:
        """Raw logits per head, each (n, k_head) float32; `lone`: on the wider session, if any."""
        session = self.lone_session if lone and self.lone_session is not None else self.session
        if not self.row_by_row or len(batch.input_ids) == 1:
            outputs = session.run(self._output_names, batch.as_onnx_feed())
            return dict(zip(HEADS, outputs, strict=True))
        rows = [session.run(self._output_names, feed) for feed in batch.row_feeds()]
        return {
            head: np.concatenate([row[index] for row in rows]) for index, head in enumerate(HEADS)
        }

    def probabilities(self, logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {head: softmax(logits[head], self.calibration[head].temperature) for head in HEADS}

    def checked_texts(self, texts: Iterable[str]) -> list[str]:
        """`texts` as a list, or the TypeError or `InputError` naming the first text that is not
        a string, is longer than `max_text_chars`, is not valid Unicode or is empty."""
        return checked_texts(texts, self.max_text_chars)

    def predict_proba(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Calibrated probabilities per head, each (n, k_head), rows in bundle label order.

        `texts` is a list (or any iterable) of message texts, never one str (`checked_texts`).
        """
        texts = self.checked_texts(texts)
        if not texts:
            return {head: np.zeros((0, len(self.bundle.labels[head]))) for head in HEADS}
        return self.probabilities(self._logits_in_chunks(texts)[0])

    def predict(
        self,
        texts: Iterable[str],
        top_k: int = 3,
        entities: bool = True,
        lone: bool = False,
        check_texts: bool = True,
    ) -> list[Prediction]:
        """One model call over `texts`; `entities=False` skips span extraction (bulk scoring).

        `texts` is checked as for `predict_proba`; `top_k` labels per head are listed in `top`.
        `check_texts=False` takes the texts as given, for a caller that already refused bad
        ones with errors of its own (the server's request checks, `handlers.check_messages`).
        """
        texts = self.checked_texts(texts) if check_texts else list(texts)
        top_k = checked_top_k(top_k)
        if not texts:
            return []
        logits, truncated = self._logits_in_chunks(texts, lone)
        return self.predict_from_logits(texts, logits, truncated, top_k, entities)

    def _logits_in_chunks(
        self, texts: list[str], lone: bool = False
    ) -> tuple[dict[str, np.ndarray], list[bool]]:
        """Logits per head, (n, k_head), and whether each text was cut: `PREDICT_CHUNK` texts
        per model call, so memory stays bounded however many texts a caller passes."""
        parts, truncated = [], []
        for start in range(0, len(texts), PREDICT_CHUNK):
            batch = self.encoder.encode(texts[start : start + PREDICT_CHUNK])
            parts.append(self.logits(batch, lone=lone))
            truncated.extend(batch.truncated)
        return {head: np.concatenate([part[head] for part in parts]) for head in HEADS}, truncated

    def predict_from_logits(
        self,
        texts: Sequence[str],
        logits: Mapping[str, np.ndarray],
        truncated: Sequence[bool],
        top_k: int = 3,
        entities: bool = True,
    ) -> list[Prediction]:
        """Predictions from logits already computed, for callers that also keep the logits."""
        probs = self.probabilities(logits)
        heads = {
            head: self._head_predictions(head, probs[head], top_k)
            if self.bundle.trained(head)
            else [untrained_head() for _ in texts]
            for head in HEADS
        }
        predictions = []
        for row, text in enumerate(texts):
            row_heads = {head: heads[head][row] for head in HEADS}
            intent = row_heads["intent"].label
            assert intent is not None  # read_bundle refuses a bundle whose intent head is untrained
            predictions.append(
                Prediction(
                    heads=row_heads,
                    group=self.bundle.intent_groups[intent],
                    truncated=truncated[row],
                    asks_for_human=asks_for_human(text),
                    entities=find_entities(text) if entities else [],
                )
            )
        return predictions

    def _head_predictions(self, head: str, probs: np.ndarray, top_k: int) -> list[HeadPrediction]:
        """One head's prediction per row of (n, k) `probs`: ranked once for the whole batch.

        Ranking and reading the matrix row by row cost more in numpy calls than the model's
        own output; one stable argsort and one `tolist` per head give the same floats.
        """
        labels = self.bundle.labels[head]
        names = self.bundle.label_names[head]
        rule = self.calibration[head]
        keep = max(1, top_k)
        order = np.argsort(-probs, axis=1, kind="stable")
        ranked = np.take_along_axis(probs, order, axis=1)
        predictions = []
        for indices, confidences in zip(order.tolist(), ranked.tolist(), strict=True):
            label, confidence = labels[indices[0]], confidences[0]
            second = confidences[1] if len(confidences) > 1 else 0.0
            every = [
                (labels[index], value) for index, value in zip(indices, confidences, strict=True)
            ]
            predictions.append(
                HeadPrediction(
                    label=label,
                    name=names.get(label, label),
                    confidence=confidence,
                    abstain=confidence < rule.threshold or confidence - second < rule.margin,
                    top=every[:keep],
                    ranked=every,
                )
            )
        return predictions

    def _check_onnx_labels(self) -> None:
        """A graph that names its labels (metadata written at export) must name labels.json's."""
        stamped = self.session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA["labels"])
        if stamped is None:
            return  # graphs exported without metadata: the output widths were checked
        expected = {head: list(self.bundle.labels[head]) for head in HEADS}
        if json.loads(stamped) != expected:
            raise BundleError(
                f"{self.bundle.path}: the {self.variant} ONNX graph was exported with other labels "
                "than labels.json lists; re-export the bundle"
            )

    def _check_longest_input(self) -> None:
        """A `max_length` above the bundle's must fit the graph (its position embeddings)."""
        longest = self.encoder.encode(["检查" * self.encoder.max_length])
        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # the failure is reported below, not logged by ORT too
        for session in filter(None, (self.session, self.lone_session)):
            try:
                session.run(self._output_names, longest.as_onnx_feed(), quiet)
            except Exception:  # ORT's own exception types
                raise ValueError(
                    f"max_length {self.encoder.max_length} is more tokens than the model of "
                    f"{self.bundle.path} takes; it was trained with "
                    f"{self.bundle.manifest.max_length}: pass that or less"
                ) from None

    def _check_output_widths(self) -> None:
        """A model whose head widths differ from the bundle's label lists would decode wrongly."""
        probe = self.encoder.encode(["检查"])
        for head, logits in self.logits(probe).items():
            if logits.shape[1] != len(self.bundle.labels[head]):
                raise BundleError(
                    f"{self.bundle.path}: head {head!r} outputs {logits.shape[1]} classes but "
                    f"labels.json lists {len(self.bundle.labels[head])}"
                )
