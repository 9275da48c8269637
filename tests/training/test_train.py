"""Training end to end on a tiny random BERT (seconds), plus the parts: batches, loss, CLI."""

import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from support.training import tiny_config
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import ConfigError
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.schema import MODEL_FP32, MODEL_INT8, sha256_file
from kefu.serving.classifier import Classifier
from kefu.serving.taxonomy import HEADS
from kefu.training.config import TrainConfig, load_config
from kefu.training.loop import EarlyStopping, build_optimizer, uses_bf16, weight_average
from kefu.training.model import MultiHeadLoss, class_weight_tensor, load_classifier
from kefu.training.sampling import IGNORE, training_batches
from kefu.training.train import train


def test_training_writes_a_bundle_that_serving_loads(trained, data_dir, base_dir, taxonomy):
    config, out, result = trained
    bundle = read_bundle(out)
    manifest = bundle.manifest
    assert (manifest.base_model, manifest.max_length) == (str(base_dir), 32)
    assert manifest.model_version.startswith("kefu-")
    assert manifest.default_variant in ("fp32", "int8")
    assert (out / MODEL_INT8).exists()
    assert bundle.labels == {head: taxonomy.labels(head) for head in HEADS}
    assert bundle.policy == taxonomy.routing
    assert load_config(out / "training_config.json") == config
    assert sha256_file(out / "tokenizer.json") == sha256_file(base_dir / "tokenizer.json")
    summary = bundle.metrics["training"]
    assert summary == json.loads(json.dumps(result.summary))
    assert summary["onnx_parity"]["max_abs_diff"] <= 1e-4
    assert summary["onnx_parity"]["argmax_mismatches"] == 0
    assert summary["tokenizer_parity_texts"] == summary["rows"]["train"] + summary["rows"]["dev"]
    card = bundle.model_card_path.read_text()
    assert "licence" in card and "Not evaluated yet" in card
    assert f"Trained on `{config.train_data[0]}`" in card  # the data it really saw, never assumed
    assert "intent (21 labels), urgency (4) and emotion (5)" in card
    texts = ["在吗", "我要退款！！", "转人工", "发票"]
    for variant in ("fp32", "int8"):
        classifier = Classifier.from_bundle(out, variant=variant, intra_op_threads=1)
        batch = classifier.predict_proba(texts)
        alone = [classifier.predict_proba([text]) for text in texts]
        for head in HEADS:
            together = np.stack([probs[head][0] for probs in alone])
            # padding changes nothing (INT8 runs row by row; test_classifier checks it exactly)
            np.testing.assert_allclose(
                batch[head], together, atol=1e-5 if variant == "fp32" else 0.05
            )


def test_data_hash_is_the_sha256_over_the_training_files(trained, data_dir):
    _, out, _ = trained
    import hashlib

    digest = hashlib.sha256()
    for name in ("train.jsonl", "dev.jsonl"):
        digest.update(f"{name}:{sha256_file(data_dir / name)}\n".encode())
    assert read_bundle(out).manifest.data_hash == digest.hexdigest()


def test_the_model_learns_the_easy_intents(trained, data_dir):
    _, out, result = trained
    assert result.summary["dev_macro_f1"]["intent"] > 0.2  # chance is 1/21
    assert result.summary["steps"] == 2 * 8  # 126 rows / 16 per batch, 2 epochs
    calibration = read_bundle(out).calibration
    assert all(calibration[head].temperature > 0 for head in HEADS)


def test_same_seed_same_model(data_dir, base_dir, tmp_path):
    config = tiny_config(data_dir, base_dir, max_steps=3, int8=False, eval_every=3)
    first = train(config, tmp_path / "a", log=lambda line: None, show_progress=False)
    second = train(config, tmp_path / "b", log=lambda line: None, show_progress=False)
    assert (
        first.summary["evaluations"][0]["train_loss"]
        == second.summary["evaluations"][0]["train_loss"]
    )
    # named by what it holds, not when: the ONNX metadata carries the version, so a version of
    # the clock made every run's model.onnx another file
    for name in ("calibration.json", MODEL_FP32):
        assert sha256_file(tmp_path / "a" / name) == sha256_file(tmp_path / "b" / name), name
    version = read_bundle(tmp_path / "a").manifest.model_version
    assert re.fullmatch(r"kefu-[0-9a-f]{8}-[0-9a-f]{8}", version)
    assert version == read_bundle(tmp_path / "b").manifest.model_version
    assert not (tmp_path / "a" / MODEL_INT8).exists()
    other_seed = replace(config, seed=config.seed + 1)
    train(other_seed, tmp_path / "c", log=lambda line: None, show_progress=False)
    assert read_bundle(tmp_path / "c").manifest.model_version != version
    assert sha256_file(tmp_path / "c" / MODEL_FP32) != sha256_file(tmp_path / "a" / MODEL_FP32)


def test_bf16_autocast_trains_and_still_exports_an_fp32_model(data_dir, base_dir, tmp_path):
    losses = {}
    for precision in ("fp32", "bf16"):
        config = tiny_config(
            data_dir, base_dir, max_steps=3, int8=False, eval_every=3, precision=precision
        )
        summary = train(config, tmp_path / precision, log=lambda line: None, show_progress=False)
        losses[precision] = summary.summary["evaluations"][0]["train_loss"]
        assert summary.summary["forward_precision"] == precision
        card = read_bundle(tmp_path / precision).model_card_path.read_text()
        assert ("bf16 forward pass" in card) is (precision == "bf16")
        # the weights stay fp32: the exported graph matches the torch model as tightly as ever
        assert summary.summary["onnx_parity"]["max_abs_diff"] <= 1e-4
    assert np.isfinite(losses["bf16"])
    assert losses["bf16"] != losses["fp32"]  # the forward pass really ran in bf16
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)


def test_auto_precision_follows_the_cpu(monkeypatch):
    assert (uses_bf16("fp32"), uses_bf16("bf16")) == (False, True)
    for amx in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        assert uses_bf16("auto") is amx


def test_the_weight_average_follows_each_update_by_its_decay():
    assert weight_average(torch.nn.Linear(2, 1), 0.0) is None  # off
    model = torch.nn.Linear(2, 1, bias=False)
    average = weight_average(model, 0.75)
    for value in (1.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update_parameters(model)
    # the first update takes the weights as they are, the next moves a quarter of the way
    assert average.module.weight.tolist() == [[1.5, 1.5]]
    assert model.weight.tolist() == [[3.0, 3.0]]  # training's own weights are untouched


def test_training_with_a_weight_average_exports_the_average(data_dir, base_dir, tmp_path):
    scores = {}
    for decay in (0.0, 0.5):
        config = tiny_config(
            data_dir, base_dir, max_steps=4, int8=False, eval_every=4, ema_decay=decay
        )
        result = train(config, tmp_path / str(decay), log=lambda line: None, show_progress=False)
        scores[decay] = result.summary["evaluations"][0]["dev_macro_f1"]
        # the exported graph is the model evaluated on dev, averaged or not
        assert result.summary["onnx_parity"]["max_abs_diff"] <= 1e-4
    assert scores[0.5] != scores[0.0]
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_the_time_budget_stops_the_loop_and_still_writes_a_bundle(data_dir, base_dir, tmp_path):
    config = tiny_config(data_dir, base_dir, time_budget_minutes=1e-6, int8=False)
    summary = train(config, tmp_path / "b", log=lambda line: None, show_progress=False).summary
    assert summary["steps"] == 1
    assert summary["stopped_because"] == "time budget of 1e-06 min used"
    assert read_bundle(tmp_path / "b").manifest.default_variant == "fp32"


def test_the_bundle_is_served_with_the_normalisation_it_was_trained_with(
    data_dir, base_dir, tmp_path, monkeypatch
):
    """An older normalisation version stays trainable, and the bundle records it: the
    classifier then reads 退欵 as version 2 did (欵 unknown), not as 退款."""
    import kefu.training.train as training

    trained_with = []
    from_file = training.TextEncoder.from_file

    def recording(*args, **kwargs):
        encoder = from_file(*args, **kwargs)
        trained_with.append(encoder.normalization)
        return encoder

    monkeypatch.setattr(training.TextEncoder, "from_file", recording)
    config = tiny_config(data_dir, base_dir, text_normalization=2, max_steps=1, int8=False)
    train(config, tmp_path / "b", log=lambda line: None, show_progress=False)
    assert trained_with == [2]
    assert read_bundle(tmp_path / "b").manifest.text_normalization == 2
    encoder = Classifier.from_bundle(tmp_path / "b").encoder
    assert encoder.normalization == 2
    assert encoder.token_ids(["退欵"])[0] != encoder.token_ids(["退款"])[0]


def test_early_stopping_counts_evaluations_without_a_better_score():
    stopper = EarlyStopping(patience=2)
    assert [stopper.better(score) for score in (0.5, 0.6, 0.6, 0.55)] == [True, True, False, False]
    assert stopper.exhausted and stopper.best == 0.6
    never = EarlyStopping(patience=0)
    for _ in range(5):
        never.better(0.0)
    assert not never.exhausted


def test_without_a_dev_file_dev_is_held_out_by_text(data_dir, base_dir, tmp_path):
    config = tiny_config(data_dir, base_dir, dev_data="", dev_fraction=0.3, max_steps=2)
    rows = train(config, tmp_path / "b", log=lambda line: None, show_progress=False).summary["rows"]
    assert rows["train"] + rows["dev"] == 126
    assert 0.15 < rows["dev"] / 126 < 0.45


def test_batches_cover_every_row_once_and_are_length_sorted_within_pools():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 100, size=1000)
    batches = training_batches(lengths, 32, np.random.default_rng(1), pool_batches=4)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 25  # random batches of 32 would span about 90
    again = training_batches(lengths, 32, np.random.default_rng(1), pool_batches=4)
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))


def test_loss_masks_missing_labels_and_weights_heads():
    torch.manual_seed(0)
    logits = (torch.randn(4, 21), torch.randn(4, 4), torch.randn(4, 5))
    labels = {
        "intent": torch.tensor([0, 1, 2, 3]),
        "urgency": torch.tensor([IGNORE, 1, IGNORE, 2]),
        "emotion": torch.full((4,), IGNORE),
    }
    loss, per_head = MultiHeadLoss({"intent": 1.0, "urgency": 0.5, "emotion": 1.0})(logits, labels)
    ce = torch.nn.functional.cross_entropy
    expected = ce(logits[0], labels["intent"]) + 0.5 * ce(logits[1][[1, 3]], torch.tensor([1, 2]))
    assert torch.isclose(loss, expected)
    assert set(per_head) == {"intent", "urgency"}  # emotion has no label in the batch: no NaN


def test_class_weights_counter_imbalance_and_keep_the_scale():
    labels = np.array([0] * 90 + [1] * 10 + [IGNORE] * 5)
    balanced = class_weight_tensor(labels, 3, "balanced")
    assert balanced.tolist() == pytest.approx([0.2, 1.8, 0.0])  # class 2 absent: weight 0
    assert class_weight_tensor(labels, 3, "sqrt")[1] / class_weight_tensor(labels, 3, "sqrt")[
        0
    ] == pytest.approx(3.0)
    assert class_weight_tensor(labels, 3, "none") is None


def test_optimizer_groups_freeze_embeddings_and_decay_lower_layers(base_dir, taxonomy):
    model = load_classifier(base_dir, {head: len(taxonomy.labels(head)) for head in HEADS})
    config = TrainConfig(freeze_embeddings=True, lr=1e-4, layer_lr_decay=0.5, head_lr=1e-3)
    optimizer = build_optimizer(model, config)
    grouped = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    word_embeddings = model.encoder.embeddings.word_embeddings.weight
    assert id(word_embeddings) not in grouped and not word_embeddings.requires_grad
    layers = model.encoder.encoder.layer  # tiny BERT: 2 layers
    assert grouped[id(layers[1].output.dense.weight)] == pytest.approx(1e-4)
    assert grouped[id(layers[0].output.dense.weight)] == pytest.approx(5e-5)
    assert grouped[id(model.encoder.embeddings.position_embeddings.weight)] == pytest.approx(2.5e-5)
    assert grouped[id(model.heads["intent"].weight)] == pytest.approx(1e-3)


def test_cli_reports_a_bad_override_without_a_traceback(tmp_path):
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "b"), "--set", "epochs=0"])
    assert result.exit_code == 2  # a bad setting: the command cannot run as asked
    assert "kefu train: config epochs = 0 must be > 0" in result.output


def test_cli_reports_a_missing_data_file(tmp_path, base_dir):
    result = CliRunner().invoke(
        app,
        ["train", "--out", str(tmp_path / "b"), "--data-dir", str(tmp_path), "-q"]
        + ["--base-model", str(base_dir)],
    )
    assert result.exit_code == 1
    assert "kefu train: " in result.output and "train.jsonl" in result.output


def test_a_training_file_without_the_intent_column_is_refused_naming_it(
    data_dir, base_dir, tmp_path
):
    """A CSV whose intent column has another name would otherwise fail as "0 rows carry an
    intent label", which does not say that the column was never found."""
    rows = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]
    csv_path = tmp_path / "logs.csv"
    csv_path.write_text(
        "content,意图,urgency\n"
        + "".join(f"{row['text']},{row['intent']},{row['urgency']}\n" for row in rows),
        encoding="utf-8-sig",
    )
    out = tmp_path / "b"
    args = ["train", "--out", str(out), "-q", "--base-model", str(base_dir)]
    args += [
        "--set",
        f"train_data={csv_path}",
        "--set",
        "dev_data=",
        "--set",
        "text_column=content",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert (
        f"kefu train: {csv_path}: no column 'intent', so no row is labelled for intent; columns "
        "found: content, 意图, urgency; if one of them holds the intent, name it with --set "
        "intent_column=NAME (the intent head must be trained)"
    ) in result.output
    assert f"warning: {csv_path}: no column 'emotion'" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_a_base_model_without_weights_is_refused_before_the_data_is_read(
    data_dir, base_dir, tmp_path, monkeypatch
):
    broken = tmp_path / "no-weights"
    broken.mkdir()
    shutil.copy(base_dir / "config.json", broken / "config.json")
    read = []
    monkeypatch.setattr("kefu.training.train.load_splits", lambda *args: read.append(args))
    result = CliRunner().invoke(
        app,
        ["train", "--out", str(tmp_path / "b"), "-q", "--data-dir", str(data_dir)]
        + ["--base-model", str(broken)],
    )
    assert result.exit_code == 1, result.output
    assert f"kefu train: base model directory {broken} lacks model.safetensors" in result.output
    assert read == []


def test_a_diverging_run_stops_with_one_line_and_writes_nothing(data_dir, base_dir, tmp_path):
    out = tmp_path / "diverged"
    result = CliRunner().invoke(
        app,
        ["train", "--out", str(out), "-q", "--data-dir", str(data_dir)]
        + ["--base-model", str(base_dir), "--set", "lr=1e6", "--set", "head_lr=1e6"]
        + ["--set", "max_length=32", "--set", "threads=1"],
    )
    assert result.exit_code == 1, result.output
    assert "kefu train: training diverged: the loss is nan" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_the_bundle_folder_is_checked_before_training(base_dir, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine", "utf-8")
    mixed = tmp_path / "mine"
    mixed.mkdir()
    (mixed / "analysis.ipynb").write_text("{}", "utf-8")
    (mixed / "README.md").write_text("my notes", "utf-8")
    for out, message in [
        (taken, f"--out {taken} is a file; give a folder for the bundle"),
        (mixed, f"--out {mixed} holds files that are not part of a bundle (analysis.ipynb)"),
    ]:
        result = CliRunner().invoke(
            app,
            ["train", "--out", str(out), "-q", "--data-dir", str(tmp_path / "no-data")]
            + ["--base-model", str(base_dir)],
        )
        assert result.exit_code == 2, result.output  # before the missing data is even looked for
        assert message in result.output
    assert (mixed / "README.md").read_text("utf-8") == "my notes"


def test_retraining_into_a_bundle_replaces_its_evaluation(trained, data_dir, base_dir, tmp_path):
    _, first, _ = trained
    out = tmp_path / "again"
    shutil.copytree(first, out)
    (out / "evaluation").mkdir(exist_ok=True)
    (out / "evaluation" / "report.md").write_text("the model before", "utf-8")
    train(
        tiny_config(data_dir, base_dir, max_steps=2), out, log=lambda _: None, show_progress=False
    )
    assert not (out / "evaluation").exists()
    read_bundle(out)


@pytest.mark.slow
def test_briefly_fine_tuning_the_real_base_model(data_dir, tmp_path, taxonomy):
    """m3e-small from the kefu cache (`make base-model`; else the shared copy or the index)."""
    config = tiny_config(
        data_dir, "m3e-small", max_steps=12, eval_every=6, lr=5e-5, head_lr=1e-3, threads=2
    )
    result = train(config, tmp_path / "m3e", log=lambda line: None, show_progress=False)
    assert result.summary["onnx_parity"]["max_abs_diff"] <= 1e-4
    assert result.summary["dev_macro_f1"]["intent"] > 0.3
    assert read_bundle(tmp_path / "m3e").manifest.base_model == "m3e-small"
    for variant in ("fp32", "int8"):
        classifier = Classifier.from_bundle(tmp_path / "m3e", variant=variant)
        assert classifier.predict(["发票开了吗"])[0].intent.label in taxonomy.labels("intent")


def test_classes_with_few_training_rows_are_named(taxonomy):
    from types import SimpleNamespace

    from kefu.training.head_plan import thin_classes

    urgency = taxonomy.labels("urgency")
    rows = [urgency.index("low")] * 9 + [urgency.index("medium")] * 9 + [urgency.index("high")] * 2
    split = SimpleNamespace(labels={"urgency": np.array(rows + [IGNORE])})
    logged = []
    (note,) = thin_classes(split, taxonomy, ("urgency",), logged.append)
    assert note.endswith("urgency high 2, urgency critical 0")  # rarely and never predicted
    assert logged == [f"warning: {note}"]
