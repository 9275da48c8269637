"""The bundle's schema: the names of its files, its schema version, the manifest and
calibration records, and the ONNX graph contract the exported models keep.

Defined once, here: training writes what this says (`kefu.serving.bundle.writer`) and serving
reads and validates it (`kefu.serving.bundle.reader`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kefu.errors import BundleError
from kefu.serving.normalize import NORMALIZATION_VERSION
from kefu.serving.taxonomy import HEADS

SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
MODEL_FP32 = "model.onnx"
MODEL_INT8 = "model.int8.onnx"
TOKENIZER = "tokenizer.json"
LABELS = "labels.json"
CALIBRATION = "calibration.json"
POLICY = "policy.yaml"
METRICS = "metrics.json"
MODEL_CARD = "README.md"
TRAINING_CONFIG = "training_config.json"
# A copy of the model that `transformers` loads (AutoModel/AutoTokenizer.from_pretrained): the
# encoder, its tokenizer, a config carrying the label maps, and the three heads' weights.
HF_DIR = "hf"
HF_HEADS = "heads.safetensors"
# `kefu evaluate -o BUNDLE` writes its report here, inside the bundle
EVALUATION_DIR = "evaluation"
# ONNX metadata_props written into both graphs, so an ONNX file read alone names its outputs.
ONNX_METADATA = {"model_version": "kefu.model_version", "labels": "kefu.labels"}

REQUIRED_FILES = (MODEL_FP32, TOKENIZER, LABELS, CALIBRATION, POLICY)
# every name a bundle directory may hold (a training run replaces them all)
BUNDLE_ENTRIES = frozenset(
    {MANIFEST, MODEL_FP32, MODEL_INT8, TOKENIZER, LABELS, CALIBRATION, POLICY, METRICS}
    | {MODEL_CARD, TRAINING_CONFIG, HF_DIR, EVALUATION_DIR}
)
VARIANTS = {"fp32": MODEL_FP32, "int8": MODEL_INT8}
# Variants whose graph quantises activations at run time with one scale per call (training's
# dynamic INT8): rows computed in one call share that scale, so a message's logits would depend
# on the messages beside it (measured on the default model: 3.5% of real and seed dev messages
# got another label or route in a call of two than alone). Serving runs them one row per call.
ROW_BY_ROW_VARIANTS = frozenset({"int8"})
# ONNX graph contract: inputs and one logits output per head, shapes (batch, seq) / (batch, k).
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OUTPUTS = {head: f"{head}_logits" for head in HEADS}
# Graphs that blend in training's lexical model (kefu/training/lexical.py) also output the
# encoder's own logits under these names, the numbers the `hf/` copy reproduces; serving reads
# only ONNX_OUTPUTS.
ENCODER_OUTPUTS = {head: f"{head}_encoder_logits" for head in HEADS}


@dataclass
class HeadCalibration:
    """Temperature scaling plus the abstention rule of one head (fitted on dev)."""

    temperature: float = 1.0
    threshold: float = 0.0  # abstain when the top probability is below this
    margin: float = 0.0  # ... or when top-1 minus top-2 probability is below this


@dataclass
class Manifest:
    model_version: str
    base_model: str
    max_length: int
    default_variant: str = "fp32"
    data_hash: str = ""
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    notes: list[str] = field(default_factory=list)
    # heads trained on too few labels to use: serving returns no label for them (abstains) and
    # routing ignores them
    untrained_heads: list[str] = field(default_factory=list)
    # the text normalisation the model was trained with, and is served with (normalize.py)
    text_normalization: int = NORMALIZATION_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        if not isinstance(raw, dict):  # an array would fail below as an AttributeError
            raise ValueError(f"expected a JSON object of fields, found {type(raw).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise BundleError(f"manifest has unknown fields {sorted(unknown)}")
        raw.setdefault("text_normalization", 1)  # bundles from before the field: version 1
        return cls(**raw)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
