"""The INT8 model's hand-overs (metrics.json's `int8_escalation`): routed from the INT8 model's
own predictions, beside fp32's `escalation`, in the report and the model card.

The bundles here pair the tiny bundle's fp32 graph with a crafted INT8 file: the fp32 graph
itself (both blocks must agree), or a graph that reads every message as a calm greeting (INT8
must hand over only the messages whose text asks for a person, while fp32's block stays as it
was: the random tiny model hands over nearly everything)."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from support.evaluation import EVAL_ROWS, TRAIN_ROWS, run_cli, write_jsonl

from kefu.serving.bundle.schema import MODEL_FP32, TOKENIZER, HeadCalibration, Manifest
from kefu.serving.bundle.writer import write_bundle
from kefu.serving.entities import asks_for_human
from kefu.serving.taxonomy import HEADS, load_taxonomy

FULLY_LABELLED = [row for row in EVAL_ROWS if all(row[1:])]


def bundle_with_int8(tiny_bundle, out, int8_graph):
    """The tiny bundle's fp32 graph and tokenizer, sealed with `int8_graph` as its INT8 model."""
    taxonomy = load_taxonomy()
    write_bundle(
        out,
        manifest=Manifest(model_version="tiny-int8", base_model="tiny-random-bert", max_length=64),
        onnx_fp32=tiny_bundle / MODEL_FP32,
        onnx_int8=int8_graph,
        tokenizer_json=tiny_bundle / TOKENIZER,
        taxonomy=taxonomy,
        calibration={head: HeadCalibration() for head in HEADS},
    )
    return out


CALM = {"intent": "greeting", "urgency": "low", "emotion": "neutral"}


def always_calm(graph, out):
    """`graph` with each head's CALM label's bias raised far above every other label's: no
    content rule fires on its predictions, only the text's own request for a person does."""
    model = onnx.load(str(graph))
    taxonomy = load_taxonomy()
    for head, label in CALM.items():
        (bias,) = [i for i in model.graph.initializer if i.name == f"heads.{head}.bias"]
        values = numpy_helper.to_array(bias).copy()
        values[taxonomy.labels(head).index(label)] += 50.0
        bias.CopyFrom(numpy_helper.from_array(values.astype(np.float32), bias.name))
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-data")
    write_jsonl(folder / "train.jsonl", TRAIN_ROWS)
    write_jsonl(folder / "test.jsonl", EVAL_ROWS)
    return folder


def evaluate(bundle, data, out):
    result = run_cli(
        "--bundle", bundle, "--data", f"test={data / 'test.jsonl'}", "-o", out,
        "--no-public-dev", "--threads", 1, "--min-support", 1,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def same_graph(tiny_bundle, data, tmp_path_factory):
    """INT8 file = the fp32 graph: whatever INT8 routes, fp32 routes alike."""
    work = tmp_path_factory.mktemp("same-graph")
    bundle = bundle_with_int8(tiny_bundle, work / "bundle", tiny_bundle / MODEL_FP32)
    return evaluate(bundle, data, work / "out")


@pytest.fixture(scope="module")
def calm_int8(tiny_bundle, data, tmp_path_factory):
    """INT8 file = a graph that reads every message as a calm greeting; evaluated into the
    bundle, so its model card is rewritten too."""
    work = tmp_path_factory.mktemp("calm-int8")
    graph = always_calm(tiny_bundle / MODEL_FP32, work / "calm.onnx")
    bundle = bundle_with_int8(tiny_bundle, work / "bundle", graph)
    return bundle, evaluate(bundle, data, bundle)


def test_the_int8_block_has_the_shape_of_the_fp32_one_and_agrees_on_the_same_graph(same_graph):
    fp32, int8 = same_graph["escalation"], same_graph["int8_escalation"]
    assert set(int8) == set(fp32)
    assert set(int8["intervals"]) == set(fp32["intervals"])
    assert int8 == fp32  # same predictions, same hand-overs, same bootstrap draws
    assert int8["n"] == len(FULLY_LABELLED)


def test_the_int8_block_routes_the_int8_models_predictions(calm_int8, same_graph):
    _, metrics = calm_int8
    fp32, int8 = metrics["escalation"], metrics["int8_escalation"]
    n = len(FULLY_LABELLED)
    asking = sum(asks_for_human(row[0]) for row in FULLY_LABELLED)
    assert 0 < asking < n
    # the crafted INT8 graph reads calm greetings: the bot answers all but the texts asking
    # for a person, which the request rule hands over whatever the model reads
    assert (int8["n"], int8["predicted_human"]) == (n, asking)
    assert int8["actions"] == {"bot": 1 - asking / n, "clarify": 0.0, "human": asking / n}
    assert int8["predicted_reasons"] == {"human_requested": asking}
    # the gold side and the fp32 model are untouched: the same as with an unchanged INT8 file
    assert int8["true_human"] == fp32["true_human"] == same_graph["escalation"]["true_human"]
    assert int8["true_reasons"] == fp32["true_reasons"]
    assert fp32 == same_graph["escalation"]
    assert fp32["predicted_human"] != asking
    # and the per-head INT8 scores read the same graph: only greeting rows are right
    greetings = sum(row[1] == "greeting" for row in EVAL_ROWS)
    assert metrics["int8"]["intent"]["accuracy"] == pytest.approx(greetings / len(EVAL_ROWS))


def test_the_report_and_the_card_show_a_row_per_model(calm_int8):
    bundle, metrics = calm_int8
    report = (bundle / "evaluation" / "report.md").read_text(encoding="utf-8")
    card = (bundle / "README.md").read_text(encoding="utf-8")
    n = len(FULLY_LABELLED)
    fp32_human = metrics["escalation"]["actions"]["human"]
    int8_actions = metrics["int8_escalation"]["actions"]
    int8_mix = f"| {int8_actions['bot']:.3f} | 0.000 | {int8_actions['human']:.3f} |"
    for text in (report, card):
        rows = [line for line in text.splitlines() if line.startswith(("| fp32 |", "| INT8 |"))]
        assert len(rows) == 2, rows
        assert rows[0].startswith(f"| fp32 | {n} | ")
        assert rows[0].endswith(f"| {fp32_human:.3f} |")
        assert rows[1].startswith(f"| INT8 | {n} | ") and rows[1].endswith(int8_mix)
        assert "one message at a time, for the fp32 model and the INT8 model;" in text


def test_a_bundle_without_int8_has_a_null_block_and_one_row(tiny_bundle, data, tmp_path):
    bundle = tmp_path / "bundle"
    write_bundle(
        bundle,
        manifest=Manifest(model_version="tiny-fp32", base_model="tiny-random-bert", max_length=64),
        onnx_fp32=tiny_bundle / MODEL_FP32,
        tokenizer_json=tiny_bundle / TOKENIZER,
        taxonomy=load_taxonomy(),
        calibration={head: HeadCalibration() for head in HEADS},
    )
    metrics = evaluate(bundle, data, tmp_path / "out")
    assert metrics["int8_escalation"] is None
    assert metrics["escalation"]["n"] == len(FULLY_LABELLED)
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| fp32 |" in report and "| INT8 |" not in report
    assert "one message at a time, for the fp32 model;" in report
