"""What a trained bundle carries besides the ONNX graphs: a transformers copy, ONNX label
metadata, and heads marked untrained when the data never labelled them."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from support.training import tiny_config, write_jsonl
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import DataError
from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.schema import ENCODER_OUTPUTS, HF_HEADS, ONNX_METADATA
from kefu.serving.classifier import Classifier
from kefu.serving.normalize import normalize_text
from kefu.serving.taxonomy import HEADS
from kefu.training.train import train

TEXTS = ["在吗", "我要退款！！", "转人工", "发票开了吗 谢谢", "物流三天没动了怎么办"]


def test_transformers_loads_the_hf_copy_and_reproduces_the_onnx_logits(trained):
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    _, out, _ = trained
    bundle = read_bundle(out)
    assert bundle.hf_path == out / "hf"
    assert all(f"hf/{name}" in bundle.manifest.files for name in ("config.json", HF_HEADS))
    tokenizer = AutoTokenizer.from_pretrained(str(bundle.hf_path))
    encoder = AutoModel.from_pretrained(str(bundle.hf_path)).eval()
    heads = load_file(str(bundle.hf_path / HF_HEADS))
    for head in HEADS:
        id2label = encoder.config.kefu_heads[head]["id2label"]
        assert [id2label[str(i)] for i in range(len(id2label))] == list(bundle.labels[head])
    batch = tokenizer([normalize_text(t) for t in TEXTS], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    # the graph blends in the lexical model; the hf copy is its encoder, an output of its own
    classifier = Classifier(bundle, variant="fp32", intra_op_threads=1)
    session = ort.InferenceSession(str(bundle.model_path("fp32")))
    feed = classifier.encoder.encode(TEXTS).as_onnx_feed()
    onnx = dict(zip(HEADS, session.run([ENCODER_OUTPUTS[h] for h in HEADS], feed), strict=True))
    for head in HEADS:
        logits = pooled @ heads[f"{head}.weight"].T + heads[f"{head}.bias"]
        np.testing.assert_allclose(logits.numpy(), onnx[head], atol=1e-4)


def test_both_onnx_graphs_name_their_labels_and_version(trained):
    _, out, _ = trained
    bundle = read_bundle(out)
    for variant in ("fp32", "int8"):
        session = ort.InferenceSession(str(bundle.model_path(variant)))
        meta = session.get_modelmeta().custom_metadata_map
        assert meta[ONNX_METADATA["model_version"]] == bundle.manifest.model_version
        assert json.loads(meta[ONNX_METADATA["labels"]]) == {
            head: list(bundle.labels[head]) for head in HEADS
        }


def test_heads_without_labels_are_marked_untrained_skipped_and_not_scored(
    data_dir, base_dir, tmp_path
):
    for name in ("train.jsonl", "dev.jsonl"):
        rows = [json.loads(line) for line in (data_dir / name).read_text().splitlines()]
        write_jsonl(tmp_path / name, [row | {"urgency": None, "emotion": None} for row in rows])
    config = tiny_config(tmp_path, base_dir, max_steps=4)
    result = train(config, tmp_path / "bundle", log=lambda line: None, show_progress=False)
    bundle = result.bundle
    assert bundle.manifest.untrained_heads == ["urgency", "emotion"]
    assert not bundle.trained("urgency") and bundle.trained("intent")
    assert set(result.summary["int8_dev_macro_f1"]["fp32_macro_f1"]) == {"intent"}  # no NaN check
    assert set(result.summary["calibration"]) == {"intent"}
    assert any(
        "not trained" in note and "urgency, emotion" in note for note in bundle.manifest.notes
    )
    assert "not trained" in bundle.model_card_path.read_text(encoding="utf-8")

    # `kefu evaluate` scores the trained head and reports the others as not trained
    evaluated = CliRunner().invoke(
        app,
        ["evaluate", "--bundle", str(tmp_path / "bundle"), "--data", str(data_dir / "dev.jsonl"),
         "-o", str(tmp_path / "evaluation")],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert metrics["model"]["intent"]["trained"] and metrics["model"]["intent"]["n"] > 0
    for head in ("urgency", "emotion"):
        assert not metrics["model"][head]["trained"]
        assert metrics["model"][head]["n"] == 0 and metrics["model"][head]["accuracy"] is None
        assert f"{head:8s} not trained" in evaluated.output


def test_a_head_labelled_with_one_class_only_is_marked_untrained(data_dir, base_dir, tmp_path):
    """An export whose emotion column says 平静 on every row: the head could only ever answer
    neutral (and would score 1.0 on a test set of the same export), so it is not trained."""
    for name in ("train.jsonl", "dev.jsonl"):
        rows = [json.loads(line) for line in (data_dir / name).read_text().splitlines()]
        write_jsonl(tmp_path / name, [row | {"emotion": "平静"} for row in rows])
    logged: list[str] = []
    config = tiny_config(tmp_path, base_dir, max_steps=2)
    bundle = train(config, tmp_path / "bundle", log=logged.append, show_progress=False).bundle
    note = (
        "not trained (every labelled training row is neutral): emotion; serving returns no "
        "label for them and routing ignores them"
    )
    assert bundle.manifest.untrained_heads == ["emotion"]
    assert note in bundle.manifest.notes and f"warning: {note}" in logged
    assert bundle.trained("urgency")


def test_an_intent_head_labelled_with_one_class_only_is_a_clear_error(data_dir, base_dir, tmp_path):
    rows = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]
    write_jsonl(tmp_path / "train.jsonl", [row | {"intent": "其他"} for row in rows])
    config = tiny_config(tmp_path, base_dir, dev_data=str(data_dir / "dev.jsonl"), max_steps=1)
    with pytest.raises(DataError, match="every training row with an intent label is other: "):
        train(config, tmp_path / "bundle", log=lambda line: None, show_progress=False)


def test_too_few_intent_labels_is_a_clear_error(data_dir, base_dir, tmp_path):
    rows = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]
    write_jsonl(tmp_path / "train.jsonl", rows[:10])
    config = tiny_config(tmp_path, base_dir, dev_data=str(data_dir / "dev.jsonl"), max_steps=1)
    with pytest.raises(DataError, match="only 10 training rows carry an intent label"):
        train(config, tmp_path / "bundle", log=lambda line: None, show_progress=False)


def test_serving_refuses_a_graph_stamped_with_other_labels(trained, tmp_path):
    import shutil

    from kefu.errors import BundleError
    from kefu.serving.bundle.schema import MANIFEST, sha256_file
    from kefu.training.hf_export import stamp_onnx_metadata

    _, out, _ = trained
    copy = shutil.copytree(out, tmp_path / "copy")
    labels = {head: list(read_bundle(copy).labels[head]) for head in HEADS}
    labels["intent"] = labels["intent"][::-1]
    stamp_onnx_metadata(copy / "model.onnx", labels, "swapped")
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"]["model.onnx"] = sha256_file(copy / "model.onnx")  # only the labels differ
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="exported with other labels than labels.json"):
        Classifier.from_bundle(copy, variant="fp32", intra_op_threads=1)


def test_the_model_card_opens_with_hugging_face_metadata_and_shows_how_to_load_it(trained):
    import yaml

    config, out, _ = trained
    card = read_bundle(out).model_card_path.read_text(encoding="utf-8")
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["language"] == ["zh"] and meta["pipeline_tag"] == "text-classification"
    assert meta["datasets"] == config.train_data  # the data it was really trained on
    assert {"license", "metrics", "base_model"} <= set(meta)
    assert 'hf = "path/to/this/bundle/hf"' in card and "AutoModel.from_pretrained(hf)" in card


def test_the_model_cards_code_runs_and_names_the_encoders_intent(trained, capsys):
    """The card's example, run as printed on this bundle, gives the label of the graph's encoder."""
    _, out, _ = trained
    bundle = read_bundle(out)
    card = bundle.model_card_path.read_text(encoding="utf-8")
    code = card.split("```python\n")[1].split("```")[0]
    assert "normalize_text(" in code  # the model learned normalised text
    exec(code.replace("path/to/this/bundle", str(out)), {})
    classifier = Classifier(bundle, variant="fp32", intra_op_threads=1)
    session = ort.InferenceSession(str(bundle.model_path("fp32")))
    feed = classifier.encoder.encode(["我的快递三天没动了😡"]).as_onnx_feed()
    (logits,) = session.run([ENCODER_OUTPUTS["intent"]], feed)
    assert capsys.readouterr().out.strip() == bundle.labels["intent"][int(logits.argmax())]
