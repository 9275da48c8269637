import json
import re
import shutil

import pytest

from kefu.errors import BundleError, BundleNotFound, VariantNotFound
from kefu.serving.bundle import schema as bundle_format
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.schema import Manifest
from kefu.serving.bundle.writer import update_bundle
from kefu.serving.classifier import Classifier
from kefu.serving.normalize import NORMALIZATION_VERSION


def test_manifest_json_round_trip():
    manifest = Manifest(
        model_version="v1", base_model="m3e-small", max_length=128, files={"a": "b"}
    )
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_tiny_bundle_reads_back_with_taxonomy_labels(tiny_bundle, taxonomy):
    loaded = read_bundle(tiny_bundle)
    assert loaded.labels["intent"] == taxonomy.labels("intent")
    assert set(loaded.manifest.files) >= set(bundle_format.REQUIRED_FILES) | {
        bundle_format.MODEL_INT8
    }


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(tiny_bundle, target)
    return target


def test_corrupt_model_file_is_refused(bundle_copy):
    with (bundle_copy / bundle_format.MODEL_FP32).open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(BundleError, match="sha256 of model.onnx"):
        read_bundle(bundle_copy)


@pytest.mark.parametrize("name", bundle_format.REQUIRED_FILES)
def test_missing_file_is_refused(bundle_copy, name):
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError, match=name):
        read_bundle(bundle_copy)


def test_unknown_schema_version_is_refused(bundle_copy):
    path = bundle_copy / bundle_format.MANIFEST
    raw = json.loads(path.read_text())
    raw["schema_version"] = 99
    path.write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="schema version 99 is not supported"):
        read_bundle(bundle_copy)


def test_a_manifest_from_before_normalisation_versions_reads_as_version_1(bundle_copy):
    path = bundle_copy / bundle_format.MANIFEST
    raw = json.loads(path.read_text())
    assert raw.pop("text_normalization") == NORMALIZATION_VERSION  # what training writes
    path.write_text(json.dumps(raw))
    loaded = read_bundle(bundle_copy)
    assert loaded.manifest.text_normalization == 1
    assert loaded.text_encoder().normalization == 1


def test_a_normalisation_newer_than_this_kefu_is_refused(bundle_copy):
    path = bundle_copy / bundle_format.MANIFEST
    raw = json.loads(path.read_text())
    raw["text_normalization"] = NORMALIZATION_VERSION + 1
    path.write_text(json.dumps(raw))
    with pytest.raises(
        BundleError,
        match=f"trained with text normalisation version {NORMALIZATION_VERSION + 1}; "
        f"this kefu knows versions 1 to {NORMALIZATION_VERSION}",
    ):
        read_bundle(bundle_copy)


def test_labels_that_do_not_match_the_model_are_refused(bundle_copy):
    labels_path = bundle_copy / bundle_format.LABELS
    raw = json.loads(labels_path.read_text())
    raw["heads"]["emotion"] = raw["heads"]["emotion"][:-1]
    labels_path.write_text(json.dumps(raw))
    manifest = Manifest.from_json((bundle_copy / bundle_format.MANIFEST).read_text())
    manifest.files[bundle_format.LABELS] = bundle_format.sha256_file(labels_path)
    (bundle_copy / bundle_format.MANIFEST).write_text(manifest.to_json())
    with pytest.raises(
        BundleError, match="head 'emotion' outputs 5 classes but labels.json lists 4"
    ):
        Classifier.from_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("tokenizer_text", "found"),
    [
        ("not json", "expected ident"),
        ('{"version": "1.0", "model": {"type": "WordLevel", "vocab": {"a": 0}, '
         '"unk_token": "a"}}', "tokenizer has no [CLS] token"),
    ],
)  # fmt: skip
def test_an_unusable_tokenizer_is_a_bundle_error(bundle_copy, tokenizer_text, found):
    tokenizer_path = bundle_copy / bundle_format.TOKENIZER
    tokenizer_path.write_text(tokenizer_text)
    manifest = Manifest.from_json((bundle_copy / bundle_format.MANIFEST).read_text())
    manifest.files[bundle_format.TOKENIZER] = bundle_format.sha256_file(tokenizer_path)
    (bundle_copy / bundle_format.MANIFEST).write_text(manifest.to_json())
    with pytest.raises(BundleError, match=rf"tokenizer.json cannot be used: .*{re.escape(found)}"):
        Classifier.from_bundle(bundle_copy)


def test_update_reseals_hashes(bundle_copy):
    updated = update_bundle(bundle_copy, metrics={"n": 3}, model_card="# card\n")
    assert updated.metrics == {"n": 3}
    assert read_bundle(bundle_copy).manifest.files[
        bundle_format.METRICS
    ] == bundle_format.sha256_file(bundle_copy / bundle_format.METRICS)


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("README.md", "{path} is a file, not a bundle directory"),
        ("nowhere", "bundle directory {path} does not exist"),
        ("empty", "{path} is not a kefu bundle: manifest.json is missing"),
    ],
)
def test_no_bundle_where_one_was_named_ends_with_the_command_lines_advice(tmp_path, name, found):
    """What was found, then how a command names another bundle (the reload endpoint words its
    own advice after the same `found`)."""
    path = tmp_path / name
    if name == "README.md":
        path.write_text("notes", "utf-8")
    if name == "empty":
        path.mkdir()
    with pytest.raises(BundleNotFound) as refused:
        read_bundle(path)
    assert refused.value.found == found.format(path=path)
    assert str(refused.value) == (
        f"{refused.value.found}; pass --bundle DIR (or KEFU_BUNDLE), or build one "
        "(`make model` in a checkout, or `kefu train`)"
    )


def test_a_variant_the_bundle_lacks_names_what_it_has_and_the_option(bundle_copy):
    (bundle_copy / bundle_format.MODEL_INT8).unlink()
    manifest = json.loads((bundle_copy / bundle_format.MANIFEST).read_text("utf-8"))
    del manifest["files"][bundle_format.MODEL_INT8]
    (bundle_copy / bundle_format.MANIFEST).write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(VariantNotFound) as refused:
        read_bundle(bundle_copy).model_path("int8")
    assert (refused.value.field, str(refused.value)) == (
        "variant",
        f"bundle {bundle_copy} has no int8 model (model.int8.onnx), only fp32; pass --variant "
        "with one it has",
    )


def test_a_bundle_path_that_is_not_a_path_is_named():
    with pytest.raises(TypeError, match=r"path of its folder \(str or Path\), got NoneType"):
        read_bundle(None)


def edit_json(bundle_dir, name, change):
    """Apply `change` to one JSON file of the bundle and re-seal its hash in the manifest."""
    path = bundle_dir / name
    raw = json.loads(path.read_text(encoding="utf-8"))
    change(raw)
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    if name != bundle_format.MANIFEST:
        edit_json(
            bundle_dir,
            bundle_format.MANIFEST,
            lambda manifest: manifest["files"].update({name: bundle_format.sha256_file(path)}),
        )


def _duplicate_intent(labels):
    labels["heads"]["intent"][1] = labels["heads"]["intent"][0]


def _set(*keys, value):
    def change(raw):
        for key in keys[:-1]:
            raw = raw[key]
        raw[keys[-1]] = value

    return change


BAD_BUNDLES = [
    (
        bundle_format.LABELS,
        _duplicate_intent,
        "head 'intent' has empty or duplicate labels in labels.json",
    ),
    (
        bundle_format.LABELS,
        lambda labels: labels["intent_groups"].pop("other"),
        "intents without a group in labels.json: ['other']",
    ),
    (
        bundle_format.CALIBRATION,
        _set("urgency", "temperature", value=0.0),
        "head 'urgency' temperature must be > 0",
    ),
    (
        bundle_format.MANIFEST,
        _set("untrained_heads", value=["intent"]),
        "manifest.json marks the intent head untrained; routing needs it",
    ),
    (
        bundle_format.MANIFEST,
        _set("colour", value="blue"),
        "manifest has unknown fields ['colour']",
    ),
    (
        bundle_format.MANIFEST,
        _set("text_normalization", value=0),
        "trained with text normalisation version 0; this kefu knows versions 1 to",
    ),
    (
        bundle_format.MANIFEST,
        _set("default_variant", value="fp16"),
        "unknown default_variant 'fp16'",
    ),
    (
        bundle_format.MANIFEST,
        lambda manifest: manifest["files"].pop(bundle_format.POLICY),
        "policy.yaml is not listed in manifest.json",
    ),
]


@pytest.mark.parametrize(
    ("name", "change", "message"), BAD_BUNDLES, ids=[case[2] for case in BAD_BUNDLES]
)
def test_an_inconsistent_bundle_is_refused_naming_the_problem(bundle_copy, name, change, message):
    read_bundle(bundle_copy)  # valid before the change
    edit_json(bundle_copy, name, change)
    with pytest.raises(BundleError, match=re.escape(message)):
        read_bundle(bundle_copy)
