"""Writing a bundle: training's whole model into one folder, or evaluation's metrics and card
into an existing one, each time sealed (every file hashed into the manifest) and read back as
serving would read it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import InputError
from kefu.serving.bundle.reader import Bundle, read_bundle
from kefu.serving.bundle.schema import (
    BUNDLE_ENTRIES,
    CALIBRATION,
    EVALUATION_DIR,
    HF_DIR,
    LABELS,
    MANIFEST,
    METRICS,
    MODEL_CARD,
    MODEL_FP32,
    MODEL_INT8,
    POLICY,
    TOKENIZER,
    TRAINING_CONFIG,
    HeadCalibration,
    Manifest,
    sha256_file,
)
from kefu.serving.taxonomy import HEADS, Taxonomy


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
