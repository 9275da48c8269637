"""`kefu evaluate -o BUNDLE` (or `--update-bundle`): metrics.json and the model card rewritten
inside the bundle, its hashes re-sealed, what training wrote kept."""

import json
import shutil
from dataclasses import replace

from support.evaluation import run_cli

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.writer import update_bundle
from kefu.serving.taxonomy import HEADS


def test_evaluating_into_the_bundle_updates_metrics_and_card_and_keeps_it_valid(
    tiny_bundle, evaluation_data, tmp_path
):
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle_dir)
    bundle = read_bundle(bundle_dir)
    # An abstain-always rule and a temperature: abstain rate 1, ECE differs before/after scaling.
    calibration = {
        head: replace(bundle.calibration[head], temperature=3.0, threshold=1.01) for head in HEADS
    }
    training = {
        "seconds_total": 750.4,
        "seconds_loop": 701.0,
        "threads": 2,
        "rows": {"train": 14, "dev": 3},
        "base_model_licence": "TEST LICENCE: non-commercial research use only",
        "calibration": {"intent": {"target_precision": 0.95, "answered_precision": 0.96}},
    }
    update_bundle(
        bundle_dir, calibration=calibration, metrics={"training": training, "custom": {"x": 1}}
    )
    for _ in range(2):  # re-evaluating an evaluated bundle must keep its seal valid
        result = run_cli(
            "--bundle",
            bundle_dir,
            "--data",
            evaluation_data / "test.jsonl",
            "-o",
            bundle_dir,
            "--no-public-dev",
        )
        assert result.exit_code == 0, result.output
    updated = read_bundle(bundle_dir)  # hashes verified
    report_metrics = json.loads(
        (bundle_dir / "evaluation" / "metrics.json").read_text(encoding="utf-8")
    )
    assert updated.metrics == report_metrics | {"training": training, "custom": {"x": 1}}
    assert "public_dev" not in updated.metrics
    for head in HEADS:
        assert updated.metrics["model"][head]["abstain_rate"] == 1.0
        assert (
            updated.metrics["model"][head]["ece"]
            != updated.metrics["model"][head]["ece_uncalibrated"]
        )
    card = updated.model_card_path.read_text(encoding="utf-8")
    assert card.startswith("---\n")  # Hugging Face metadata first
    assert "\n# kefu triage model tiny-0\n" in card
    for expected in (
        "| base model licence | TEST LICENCE: non-commercial research use only |",
        "| training time | 12 min 30 s in all, 11 min 41 s in the training loop, on 2 CPU threads |",
        "| dev data | `?` (3 rows) |",
        "| custom: x | 1 |",
        "weights are for non-commercial research use only",
        "[evaluation/report.md](evaluation/report.md)",
        "## Calibration and abstention",
        "| intent | 3.000 | 1.010 | 0.000 | 0.950 | 0.960 |",
        "## Intended use",
        "## Known limits",
        "95% bootstrap intervals from 1000 resamples",
        f"Routed with the bundle's policy.yaml (sha256 `{updated.manifest.files['policy.yaml'][:12]}`).",
    ):
        assert expected in card, expected
    assert "| custom: uncertainty" not in card  # an evaluation block, not a training record


def test_update_bundle_flag_writes_the_card_when_out_is_elsewhere(
    tiny_bundle, evaluation_data, tmp_path
):
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle_dir)
    result = run_cli(
        "--bundle", bundle_dir, "--data", evaluation_data / "test.jsonl", "-o", tmp_path / "out",
        "--public-dev", evaluation_data / "public-dev", "--update-bundle",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = read_bundle(bundle_dir).model_card_path.read_text(encoding="utf-8")
    assert "| jd_chat_vs_business | chitchat_vs_business | 5 |" in card
    assert "reviews and social posts" in card
