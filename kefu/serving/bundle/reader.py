"""Reading a bundle for use: every file checked against the schema and the manifest's hashes,
then loaded into plain Python values (no model session here: the classifier opens that)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import BundleError, BundleNotFound, VariantNotFound
from kefu.serving.bundle.schema import (
    CALIBRATION,
    HF_DIR,
    LABELS,
    MANIFEST,
    METRICS,
    MODEL_CARD,
    POLICY,
    REQUIRED_FILES,
    SCHEMA_VERSION,
    TOKENIZER,
    TRAINING_CONFIG,
    VARIANTS,
    HeadCalibration,
    Manifest,
    sha256_file,
)
from kefu.serving.normalize import NORMALIZATION_VERSION
from kefu.serving.preview import preview
from kefu.serving.taxonomy import HEADS
from kefu.serving.tokenization import TextEncoder


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
            present = [name for name, file in VARIANTS.items() if (self.path / file).exists()]
            raise VariantNotFound(
                f"bundle {self.path} has no {chosen} model ({VARIANTS[chosen]}), only "
                f"{', '.join(present)}"
            )
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


def read_bundle(bundle_dir: str | Path) -> Bundle:
    """Load and validate a bundle (every file against its hash); every problem raises
    BundleError saying what to do."""
    if not isinstance(bundle_dir, str | os.PathLike):
        raise TypeError(
            f"a bundle is named by the path of its folder (str or Path), got "
            f"{type(bundle_dir).__name__}"
        )
    path = Path(bundle_dir)
    manifest = _read_manifest(path)
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
    except KeyError as exc:
        raise BundleError(f"{path}: {LABELS} or {CALIBRATION} lacks {exc}") from None
    except TypeError as exc:  # a list for a mapping, a field HeadCalibration does not have
        raise BundleError(
            f"{path}: {LABELS} or {CALIBRATION} is not as kefu writes it: {exc}"
        ) from None
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
        raise BundleNotFound(f"{path} is a file, not a bundle directory")
    if not path.is_dir():
        raise BundleNotFound(f"bundle directory {path} does not exist")
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise BundleNotFound(f"{path} is not a kefu bundle: {MANIFEST} is missing")
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path.parent}: {path.name} is missing") from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
