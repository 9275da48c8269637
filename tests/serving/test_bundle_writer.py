"""Writing a bundle: the folder it may replace, the stale files it must not seal in, and the
values an update re-seals (reading is tested in test_bundle.py)."""

import pytest

from kefu.errors import InputError
from kefu.serving.bundle import schema as bundle_format
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.schema import HeadCalibration, Manifest
from kefu.serving.bundle.writer import check_bundle_target, update_bundle, write_bundle
from kefu.serving.taxonomy import HEADS


@pytest.mark.parametrize(
    ("names", "listed"),
    [
        (["c.txt", "a.txt", "b.txt"], "a.txt, b.txt, c.txt"),
        (["d.txt", "c.txt", "a.txt", "b.txt"], "a.txt, b.txt, c.txt, ..."),
    ],
)
def test_a_folder_of_other_files_is_refused_naming_three_of_them(tmp_path, names, listed):
    for name in names:
        (tmp_path / name).write_text("mine", "utf-8")
    (tmp_path / bundle_format.MODEL_CARD).write_text("a bundle file", "utf-8")
    with pytest.raises(InputError) as refused:
        check_bundle_target(tmp_path)
    assert (refused.value.field, str(refused.value)) == (
        "--out",
        f"--out {tmp_path} holds files that are not part of a bundle ({listed}); give a new or "
        "empty folder",
    )


def test_a_bundle_rewritten_without_int8_keeps_no_stale_int8_model(bundle_copy, taxonomy):
    assert (bundle_copy / bundle_format.MODEL_INT8).exists()
    rewritten = write_bundle(
        bundle_copy,
        manifest=Manifest(model_version="tiny-1", base_model="tiny-random-bert", max_length=64),
        onnx_fp32=bundle_copy / bundle_format.MODEL_FP32,
        tokenizer_json=bundle_copy / bundle_format.TOKENIZER,
        taxonomy=taxonomy,
        calibration={head: HeadCalibration() for head in HEADS},
    )
    assert not (bundle_copy / bundle_format.MODEL_INT8).exists()
    assert bundle_format.MODEL_INT8 not in rewritten.manifest.files


def test_an_update_re_seals_the_calibration_default_variant_and_notes(bundle_copy):
    calibration = {head: HeadCalibration(temperature=2.0, threshold=0.3) for head in HEADS}
    update_bundle(bundle_copy, calibration=calibration, default_variant="int8", notes=["tuned"])
    updated = read_bundle(bundle_copy)
    assert updated.calibration == calibration
    assert (updated.manifest.default_variant, updated.manifest.notes) == ("int8", ["tuned"])
