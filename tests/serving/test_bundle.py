import json
import re

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


@pytest.mark.parametrize(
    "name", [bundle_format.MODEL_FP32, bundle_format.MODEL_INT8, bundle_format.METRICS]
)
def test_a_changed_file_is_refused_whether_required_or_not(bundle_copy, name):
    expected = read_bundle(bundle_copy).manifest.files[name]
    with (bundle_copy / name).open("ab") as handle:
        handle.write(b"tampered")
    actual = bundle_format.sha256_file(bundle_copy / name)
    with pytest.raises(BundleError) as refused:
        read_bundle(bundle_copy)
    assert str(refused.value) == (
        f"{bundle_copy}: sha256 of {name} is {actual[:12]}..., manifest says {expected[:12]}...; "
        "the file was changed or corrupted after export; re-export the bundle"
    )


@pytest.mark.parametrize("name", bundle_format.REQUIRED_FILES)
def test_missing_file_is_refused(bundle_copy, name):
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError) as refused:
        read_bundle(bundle_copy)
    assert str(refused.value) == f"{bundle_copy}: required file {name} is missing"


def test_a_listed_file_that_is_missing_is_refused(bundle_copy):
    (bundle_copy / bundle_format.MODEL_INT8).unlink()
    with pytest.raises(BundleError) as refused:
        read_bundle(bundle_copy)
    assert str(refused.value) == (
        f"{bundle_copy}: model.int8.onnx is listed in manifest.json but missing"
    )


@pytest.mark.parametrize("version", [0, 2, 99])
def test_a_schema_version_other_than_1_is_refused(bundle_copy, version):
    path = bundle_copy / bundle_format.MANIFEST
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 1  # what training writes
    raw["schema_version"] = version
    path.write_text(json.dumps(raw))
    with pytest.raises(BundleError) as refused:
        read_bundle(bundle_copy)
    assert str(refused.value) == (
        f"{bundle_copy}: bundle schema version {version} is not supported (this kefu reads "
        "version 1); re-export the model with this kefu"
    )


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


def test_a_variant_kefu_does_not_know_is_named(bundle_copy):
    with pytest.raises(BundleError) as refused:
        read_bundle(bundle_copy).model_path("fp16")
    assert str(refused.value) == "unknown model variant 'fp16'; expected one of ['fp32', 'int8']"


def test_a_bundle_path_that_is_not_a_path_is_named():
    with pytest.raises(TypeError, match=r"path of its folder \(str or Path\), got NoneType"):
        read_bundle(None)


def edit_json(bundle_dir, name, change):
    """Apply `change` to one JSON file of the bundle and re-seal its hash in the manifest."""
    raw = json.loads((bundle_dir / name).read_text(encoding="utf-8"))
    change(raw)
    replace_file(bundle_dir, name, json.dumps(raw, ensure_ascii=False).encode("utf-8"))


def replace_file(bundle_dir, name, content):
    """Write `content` (bytes) as one file of the bundle and re-seal its hash in the manifest."""
    path = bundle_dir / name
    path.write_bytes(content)
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
        _set("heads", "emotion", value=[]),
        "head 'emotion' has empty or duplicate labels in labels.json",
    ),
    (
        bundle_format.LABELS,
        _set("heads", value=["intent"]),
        "labels.json or calibration.json is not as kefu writes it: list indices must be",
    ),
    (
        bundle_format.CALIBRATION,
        _set("intent", value={"temp": 1.0}),
        "is not as kefu writes it: HeadCalibration.__init__() got an unexpected keyword "
        "argument 'temp'",
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
        _set("untrained_heads", value=["sentiment"]),
        "manifest.json names unknown untrained heads ['sentiment']",
    ),
    (
        bundle_format.MANIFEST,
        lambda manifest: manifest.pop("model_version"),
        "manifest.json is not a valid manifest: Manifest.__init__() missing 1 required "
        "positional argument: 'model_version'",
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


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("manifest.json", b"[]", "{path}/manifest.json is not a valid manifest: expected a JSON "
         "object of fields, found list"),
        ("labels.json", b"\xff{}", "{path}/labels.json is not valid JSON: 'utf-8' codec can't "
         "decode byte 0xff in position 0: invalid start byte"),
        ("policy.yaml", b"rules: [\n", "{path}: policy.yaml is not valid YAML: while parsing"),
    ],
)  # fmt: skip
def test_a_file_that_does_not_parse_is_named(bundle_copy, name, content, message):
    replace_file(bundle_copy, name, content)
    with pytest.raises(BundleError) as refused:
        read_bundle(bundle_copy)
    assert str(refused.value).startswith(message.format(path=bundle_copy))
