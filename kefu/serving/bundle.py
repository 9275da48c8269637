"""The model bundle format: the one module that names bundle files, writes and validates them.

A bundle is one directory. Training writes it through `write_bundle` (and `update_bundle` when
evaluation adds metrics and the model card); serving reads it through `read_bundle`, which
refuses an unknown schema version, a missing file, a hash mismatch or labels that do not match
the model's outputs. Nothing outside this module spells a bundle file name, which is why it
is longer than most modules: splitting writing from reading would let the two drift apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import BundleError, InputError
from kefu.serving.normalize import NORMALIZATION_VERSION
from kefu.serving.preview import preview
from kefu.serving.taxonomy import HEADS, Taxonomy
from kefu.serving.tokenization import TextEncoder

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
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise BundleError(f"manifest has unknown fields {sorted(unknown)}")
        raw.setdefault("text_normalization", 1)  # bundles from before the field: version 1
        return cls(**raw)


@dataclass
class Bundle:
    """A validated bundle, loaded into plain Python values (no model session here)."""

    path: Path
    manifest: Manifest
    labels: dict[str, tuple[str, ...]]
    label_names: dict[str, dict[str, str]]
    intent_groups: dict[str, str]
    group_queues: dict[str, str]
    urgency_priorities: dict[str, str]
    calibration: dict[str, HeadCalibration]
    policy: dict[str, Any]
    metrics: dict[str, Any]

    def model_path(self, variant: str | None = None) -> Path:
        """Path of the ONNX file for `variant` ("fp32", "int8", or None for the default)."""
        chosen = variant or self.manifest.default_variant
        if chosen not in VARIANTS:
            raise BundleError(
                f"unknown model variant {preview(chosen)}; expected one of {sorted(VARIANTS)}"
            )
        path = self.path / VARIANTS[chosen]
        if not path.exists():
            raise BundleError(f"bundle {self.path} has no {chosen} model ({VARIANTS[chosen]})")
        return path

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER

    def text_encoder(self, max_length: int | None = None) -> TextEncoder:
        """The bundle's tokenizer with the normalisation its model was trained with.

        A tokenizer that matches its hash can still be unusable (written by another tool, not
        WordPiece): `tokenizers` raises a bare `Exception` for a file it cannot parse, so any
        failure here is the bundle's, and says so.
        """
        try:
            return TextEncoder.from_file(
                self.tokenizer_path,
                max_length or self.manifest.max_length,
                self.manifest.text_normalization,
            )
        except Exception as exc:
            raise BundleError(
                f"bundle {self.path}: {TOKENIZER} cannot be used: {exc}; a bundle needs the "
                "BERT WordPiece tokenizer its model was trained with"
            ) from None

    @property
    def model_card_path(self) -> Path:
        return self.path / MODEL_CARD

    @property
    def hf_path(self) -> Path | None:
        """The transformers-loadable copy of the model, when the bundle has one."""
        path = self.path / HF_DIR
        return path if (path / "config.json").is_file() else None

    def trained(self, head: str) -> bool:
        return head not in self.manifest.untrained_heads

    @property
    def training_config(self) -> dict[str, Any]:
        path = self.path / TRAINING_CONFIG
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def labels_document(taxonomy: Taxonomy) -> dict[str, Any]:
    """What a bundle stores about labels: ordered ids per head, names, groups and queues."""
    return {
        "heads": {head: list(taxonomy.labels(head)) for head in HEADS},
        "names": {head: taxonomy.names(head) for head in HEADS},
        "intent_groups": taxonomy.intent_groups(),
        "group_queues": taxonomy.group_queues(),
        "urgency_priorities": taxonomy.urgency_priorities(),
        "taxonomy_version": taxonomy.version,
    }


def check_bundle_target(out_dir: str | Path) -> None:
    """Refuse, before hours of training, a target that is a file or a folder of other things.

    A new or empty folder, or one holding only bundle files (an earlier bundle, or one whose
    writing was cut short), is replaced; anything else would be overwritten or mixed in.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the bundle", "--out")
    foreign = (
        sorted(entry.name for entry in out.iterdir() if entry.name not in BUNDLE_ENTRIES)
        if out.is_dir()
        else []
    )
    if foreign:
        raise InputError(
            f"--out {out} holds files that are not part of a bundle ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); give a new or empty folder",
            "--out",
        )


def write_bundle(
    out_dir: str | Path,
    *,
    manifest: Manifest,
    onnx_fp32: Path,
    tokenizer_json: Path,
    taxonomy: Taxonomy,
    calibration: Mapping[str, HeadCalibration],
    policy: Mapping[str, Any] | None = None,
    onnx_int8: Path | None = None,
    metrics: Mapping[str, Any] | None = None,
    model_card: str | None = None,
    training_config: Mapping[str, Any] | None = None,
    hf_dir: Path | None = None,
) -> Bundle:
    """Write a complete bundle into `out_dir` (replacing its files) and return it validated."""
    out = Path(out_dir)
    check_bundle_target(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(out / EVALUATION_DIR, ignore_errors=True)  # the report of the model replaced
    _copy_if_different(onnx_fp32, out / MODEL_FP32)
    if onnx_int8 is not None:
        _copy_if_different(onnx_int8, out / MODEL_INT8)
    else:
        (out / MODEL_INT8).unlink(missing_ok=True)  # a stale INT8 model must not be sealed in
    _copy_if_different(tokenizer_json, out / TOKENIZER)
    _write_json(out / LABELS, labels_document(taxonomy))
    _write_json(out / CALIBRATION, {head: asdict(calibration[head]) for head in HEADS})
    routing = dict(policy if policy is not None else taxonomy.routing)
    (out / POLICY).write_text(yaml.safe_dump(routing, allow_unicode=True, sort_keys=True), "utf-8")
    _write_json(out / METRICS, dict(metrics or {}))
    if training_config is not None:
        _write_json(out / TRAINING_CONFIG, dict(training_config))
    (out / MODEL_CARD).write_text(model_card or f"# kefu model {manifest.model_version}\n", "utf-8")
    shutil.rmtree(out / HF_DIR, ignore_errors=True)  # a stale copy must not be sealed in
    if hf_dir is not None:
        shutil.copytree(hf_dir, out / HF_DIR)
    return _seal(out, manifest)


def update_bundle(
    bundle_dir: str | Path,
    *,
    metrics: Mapping[str, Any] | None = None,
    model_card: str | None = None,
    calibration: Mapping[str, HeadCalibration] | None = None,
    default_variant: str | None = None,
    notes: list[str] | None = None,
) -> Bundle:
    """Replace metrics, card, calibration or default variant of a valid bundle and re-seal it."""
    bundle = read_bundle(bundle_dir)
    out = bundle.path
    if metrics is not None:
        _write_json(out / METRICS, dict(metrics))
    if model_card is not None:
        (out / MODEL_CARD).write_text(model_card, "utf-8")
    if calibration is not None:
        _write_json(out / CALIBRATION, {head: asdict(calibration[head]) for head in HEADS})
    manifest = bundle.manifest
    if default_variant is not None:
        manifest.default_variant = default_variant
    if notes is not None:
        manifest.notes = list(notes)
    return _seal(out, manifest)


def read_bundle(bundle_dir: str | Path, verify_hashes: bool = True) -> Bundle:
    """Load and validate a bundle; every problem raises BundleError saying what to do."""
    if not isinstance(bundle_dir, str | os.PathLike):
        raise TypeError(
            f"a bundle is named by the path of its folder (str or Path), got "
            f"{type(bundle_dir).__name__}"
        )
    path = Path(bundle_dir)
    manifest = _read_manifest(path)
    if verify_hashes:
        _verify_hashes(path, manifest)
    labels_doc = _read_json(path / LABELS)
    calibration_doc = _read_json(path / CALIBRATION)
    try:
        heads = {head: tuple(labels_doc["heads"][head]) for head in HEADS}
        calibration = {head: HeadCalibration(**calibration_doc[head]) for head in HEADS}
        names = {head: dict(labels_doc["names"][head]) for head in HEADS}
        intent_groups = dict(labels_doc["intent_groups"])
        group_queues = dict(labels_doc["group_queues"])
        urgency_priorities = dict(labels_doc["urgency_priorities"])
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{path}: {LABELS} or {CALIBRATION} lacks {exc}") from None
    _check_heads(path, manifest, heads, calibration, intent_groups)
    try:
        policy = yaml.safe_load((path / POLICY).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BundleError(f"{path}: {POLICY} is not valid YAML: {exc}") from None
    metrics_path = path / METRICS
    metrics = _read_json(metrics_path) if metrics_path.exists() else {}
    return Bundle(
        path=path,
        manifest=manifest,
        labels=heads,
        label_names=names,
        intent_groups=intent_groups,
        group_queues=group_queues,
        urgency_priorities=urgency_priorities,
        calibration=calibration,
        policy=policy,
        metrics=metrics,
    )


def _read_manifest(path: Path) -> Manifest:
    """The manifest, if this kefu can serve what it describes (schema, files, normalisation)."""
    if path.exists() and not path.is_dir():
        raise BundleError(f"{path} is a file; a bundle is a directory (e.g. models/default)")
    if not path.is_dir():
        raise BundleError(
            f"bundle directory {path} does not exist; pass --bundle DIR (or KEFU_BUNDLE), or "
            "build one (`make model` in a checkout, or `kefu train`)"
        )
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise BundleError(f"{path} is not a kefu bundle: {MANIFEST} is missing")
    try:
        manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{manifest_path} is not a valid manifest: {exc}") from None
    if manifest.schema_version != SCHEMA_VERSION:
        raise BundleError(
            f"{path}: bundle schema version {manifest.schema_version} is not supported "
            f"(this kefu reads version {SCHEMA_VERSION}); re-export the model with this kefu"
        )
    for name in REQUIRED_FILES:
        if not (path / name).exists():
            raise BundleError(f"{path}: required file {name} is missing")
        if name not in manifest.files:
            raise BundleError(f"{path}: {name} is not listed in {MANIFEST}")
    if manifest.text_normalization not in range(1, NORMALIZATION_VERSION + 1):
        raise BundleError(
            f"{path}: the model was trained with text normalisation version "
            f"{manifest.text_normalization}; this kefu knows versions 1 to "
            f"{NORMALIZATION_VERSION}; serve it with the kefu that trained it or a newer one"
        )
    if manifest.default_variant not in VARIANTS:
        raise BundleError(f"{path}: unknown default_variant {manifest.default_variant!r}")
    return manifest


def _verify_hashes(path: Path, manifest: Manifest) -> None:
    for name, expected in manifest.files.items():
        file_path = path / name
        if not file_path.exists():
            raise BundleError(f"{path}: {name} is listed in {MANIFEST} but missing")
        actual = sha256_file(file_path)
        if actual != expected:
            raise BundleError(
                f"{path}: sha256 of {name} is {actual[:12]}..., manifest says {expected[:12]}...; "
                "the file was changed or corrupted after export; re-export the bundle"
            )


def _check_heads(
    path: Path,
    manifest: Manifest,
    heads: dict[str, tuple[str, ...]],
    calibration: dict[str, HeadCalibration],
    intent_groups: dict[str, str],
) -> None:
    unknown_heads = set(manifest.untrained_heads) - set(HEADS)
    if "intent" in manifest.untrained_heads:
        raise BundleError(f"{path}: {MANIFEST} marks the intent head untrained; routing needs it")
    if unknown_heads:
        raise BundleError(
            f"{path}: {MANIFEST} names unknown untrained heads {sorted(unknown_heads)}"
        )
    for head, ids in heads.items():
        if not ids or len(set(ids)) != len(ids):
            raise BundleError(f"{path}: head {head!r} has empty or duplicate labels in {LABELS}")
        if calibration[head].temperature <= 0:
            raise BundleError(f"{path}: head {head!r} temperature must be > 0")
    missing_groups = set(heads["intent"]) - set(intent_groups)
    if missing_groups:
        raise BundleError(f"{path}: intents without a group in {LABELS}: {sorted(missing_groups)}")


def _seal(out: Path, manifest: Manifest) -> Bundle:
    """Hash every file of the bundle into the manifest, then re-read it as serving would."""
    sealed = [item for item in out.iterdir() if item.is_file() and item.name != MANIFEST]
    if (out / HF_DIR).is_dir():  # other folders (evaluation/ reports) are not part of the model
        sealed += [item for item in (out / HF_DIR).rglob("*") if item.is_file()]
    manifest.files = {
        item.relative_to(out).as_posix(): sha256_file(item) for item in sorted(sealed)
    }
    (out / MANIFEST).write_text(manifest.to_json(), "utf-8")
    return read_bundle(out)


def _copy_if_different(source: Path, target: Path) -> None:
    if Path(source).resolve() != target.resolve():
        shutil.copyfile(source, target)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path.parent}: {path.name} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
