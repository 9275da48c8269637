"""The lexical model: fitted like the TF-IDF baseline, computed inside the ONNX graph exactly."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from kefu.serving.bundle.reader import read_bundle
from kefu.serving.bundle.schema import ENCODER_OUTPUTS, ONNX_INPUTS, ONNX_OUTPUTS
from kefu.serving.taxonomy import HEADS
from kefu.training.export import quantize_int8
from kefu.training.lexical import LexicalCheckError, fit_lexical, token_ngrams
from kefu.training.lexical_graph import (
    blend_into_graph,
    check_blend,
    lexical_node_names,
    ngram_key,
)
from kefu.training.sampling import IGNORE, EncodedSplit

SIZES = {"intent": 3, "urgency": 2, "emotion": 2}
# token ids as [CLS] ... [SEP]; intent 0 rows share 7 8, intent 1 rows share 9 9 9 (a repeat)
ROWS = [
    [1, 7, 8, 5, 2],
    [1, 7, 8, 6, 2],
    [1, 5, 7, 8, 2],
    [1, 9, 9, 9, 2],
    [1, 6, 9, 9, 9, 2],
    [1, 9, 9, 9, 5, 2],
    [1, 11, 12, 2],
    [1, 11, 12, 13, 2],
]
INTENT = [0, 0, 0, 1, 1, 1, 2, 2]
URGENCY = [0, 0, 0, 1, 1, 1, 0, IGNORE]  # the last row has no urgency label
EMOTION = [0] * 8  # one label only: no classifier for this head


def split(weights=None) -> EncodedSplit:
    labels = {
        "intent": np.array(INTENT),
        "urgency": np.array(URGENCY),
        "emotion": np.array(EMOTION),
    }
    return EncodedSplit([""] * len(ROWS), ROWS, labels, weights)


def encoder_graph(path, heads=HEADS):
    """A stand-in for the exported encoder: logits = a fixed projection of mean token id."""
    ids = helper.make_tensor_value_info(ONNX_INPUTS[0], TensorProto.INT64, ["batch", "sequence"])
    others = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in ONNX_INPUTS[1:]
    ]
    nodes = [
        helper.make_node("Cast", [ONNX_INPUTS[0]], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["ids_f"], ["mean"], axes=[1], keepdims=1),
    ]
    inits, outputs = [], []
    for head in heads:
        weight = np.linspace(-0.3, 0.4, SIZES[head]).astype(np.float32).reshape(1, -1)
        inits.append(onnx.numpy_helper.from_array(weight, f"{head}_w"))
        nodes.append(helper.make_node("MatMul", ["mean", f"{head}_w"], [ONNX_OUTPUTS[head]]))
        outputs.append(
            helper.make_tensor_value_info(
                ONNX_OUTPUTS[head], TensorProto.FLOAT, ["batch", SIZES[head]]
            )
        )
    graph = helper.make_graph(nodes, "encoder", [ids, *others], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def run(path, rows, names):
    """Rows padded with 0 into one batch, as serving's fp32 variant runs them."""
    width = max(len(row) for row in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
    feed = {ONNX_INPUTS[0]: ids, ONNX_INPUTS[1]: (ids > 0).astype(np.int64)}
    feed[ONNX_INPUTS[2]] = np.zeros_like(ids)
    session = ort.InferenceSession(str(path))
    return dict(zip(names, session.run(names, feed), strict=True))


def test_ngrams_and_keys_name_each_ngram_once():
    assert token_ngrams([1, 7, 2]) == [(1,), (7,), (2,), (1, 7), (7, 2), (1, 7, 2)]
    keys = {ngram_key(g) for row in ROWS for g in token_ngrams(row)}
    assert len(keys) == len({g for row in ROWS for g in token_ngrams(row)})
    assert ngram_key((0,)) != ngram_key((0, 0))  # the +1 keeps id 0 (padding) distinct


def test_fit_skips_single_label_heads_and_puts_columns_in_taxonomy_order():
    lexical = fit_lexical(split(), SIZES, HEADS)
    assert lexical is not None
    assert lexical.heads == ("intent", "urgency")  # emotion has one label in training
    assert lexical.coef["intent"].shape == (len(lexical.ngrams), 3)
    assert all(1 <= len(g) <= 3 for g in lexical.ngrams)
    probabilities = lexical.predict_proba(ROWS)
    assert probabilities["intent"].argmax(axis=1).tolist() == INTENT
    assert probabilities["urgency"].argmax(axis=1)[:7].tolist() == URGENCY[:7]
    np.testing.assert_allclose(probabilities["urgency"].sum(axis=1), 1, atol=1e-9)


def test_row_weights_move_the_fit():
    even = fit_lexical(split(), SIZES, ["intent"])
    heavy = fit_lexical(split(np.array([5.0, 5, 5, 1, 1, 1, 1, 1])), SIZES, ["intent"])
    probe = [[1, 5, 2]]  # an n-gram both classes 0 and 1 have
    assert heavy.predict_proba(probe)["intent"][0, 0] > even.predict_proba(probe)["intent"][0, 0]


def test_a_token_id_beyond_the_key_width_is_refused_by_name():
    too_large = EncodedSplit(
        [""] * 2, [[1, 7, 2], [1, (1 << 20) - 1, 2]], {"intent": np.array([0, 1])}, None
    )
    with pytest.raises(LexicalCheckError, match=r"token id 1048575 .*lexical_weight=0"):
        fit_lexical(too_large, SIZES, ["intent"])


def test_the_graph_blends_exactly_what_was_fitted_on_padded_batches(tmp_path):
    lexical = fit_lexical(split(), SIZES, HEADS)
    encoder = encoder_graph(tmp_path / "encoder.onnx")
    blended = blend_into_graph(encoder, lexical, 0.3, tmp_path / "model.onnx")
    # unseen ids, a repeat, a row shorter than a trigram's reach, padding after short rows
    rows = [*ROWS, [1, 99, 2], [1, 9, 9, 9, 9, 9, 7, 8, 2], [1, 2]]
    before = run(encoder, rows, [ONNX_OUTPUTS[h] for h in HEADS])
    encoder_names = [ENCODER_OUTPUTS[h] for h in lexical.heads]
    after = run(blended, rows, [ONNX_OUTPUTS[h] for h in HEADS] + encoder_names)
    logits = {head: after[ONNX_OUTPUTS[head]] for head in HEADS}
    encoder_logits = {head: before[ONNX_OUTPUTS[head]] for head in HEADS}
    assert check_blend(logits, encoder_logits, lexical, rows, 0.3) < 1e-5
    # the encoder's own logits stay visible for the blended heads; emotion passes through
    np.testing.assert_allclose(
        after[ENCODER_OUTPUTS["intent"]], encoder_logits["intent"], atol=1e-6
    )
    np.testing.assert_allclose(logits["emotion"], encoder_logits["emotion"], atol=1e-6)
    # a row alone gives what it gives in a padded batch
    alone = run(blended, [rows[-2]], [ONNX_OUTPUTS["intent"]])[ONNX_OUTPUTS["intent"]]
    np.testing.assert_allclose(alone[0], logits["intent"][-2], atol=1e-6)


def test_check_blend_refuses_a_graph_that_differs(tmp_path):
    lexical = fit_lexical(split(), SIZES, HEADS)
    encoder = encoder_graph(tmp_path / "encoder.onnx")
    blended = blend_into_graph(encoder, lexical, 0.3, tmp_path / "model.onnx")
    names = [ONNX_OUTPUTS[h] for h in HEADS]
    before, after = run(encoder, ROWS, names), run(blended, ROWS, names)
    encoder_logits = {head: before[ONNX_OUTPUTS[head]] for head in HEADS}
    logits = {head: after[ONNX_OUTPUTS[head]] for head in HEADS}
    with pytest.raises(LexicalCheckError, match="differs from the fitted model"):
        check_blend(logits, encoder_logits, lexical, ROWS, 0.5)  # not the weight it was built with


def test_int8_quantisation_leaves_the_lexical_nodes_in_fp32(tmp_path):
    lexical = fit_lexical(split(), SIZES, HEADS)
    blended = blend_into_graph(
        encoder_graph(tmp_path / "e.onnx"), lexical, 0.3, tmp_path / "m.onnx"
    )
    int8 = quantize_int8(blended, tmp_path / "m.int8.onnx")
    added = set(lexical_node_names(blended))
    assert added and added <= set(lexical_node_names(int8))
    coef = next(i for i in onnx.load(str(int8)).graph.initializer if i.name == "lexical_coef")
    assert coef.data_type == TensorProto.FLOAT
    # the encoder's MatMul is quantised; the blend on top of it is still the fitted one
    names = [ONNX_OUTPUTS[h] for h in lexical.heads] + [ENCODER_OUTPUTS[h] for h in lexical.heads]
    out = run(int8, ROWS, names)
    logits = {head: out[ONNX_OUTPUTS[head]] for head in lexical.heads}
    encoder_logits = {head: out[ENCODER_OUTPUTS[head]] for head in lexical.heads}
    assert check_blend(logits, encoder_logits, lexical, ROWS, 0.3) < 1e-5


def test_a_trained_bundle_serves_the_blend_and_records_it(trained):
    config, out, result = trained
    summary = result.summary["lexical"]
    assert summary["weight"] == config.lexical_weight == 0.3
    assert summary["ngrams"] > 0 and summary["max_abs_diff"] < 1e-4
    bundle = read_bundle(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["lexical"]["heads"] == summary["heads"]
    assert "lexical model" in (out / "README.md").read_text()
    for variant in ("fp32", "int8"):
        session = ort.InferenceSession(str(bundle.model_path(variant)))
        outputs = {o.name for o in session.get_outputs()}
        assert set(ONNX_OUTPUTS.values()) <= outputs
        assert {ENCODER_OUTPUTS[h] for h in summary["heads"]} <= outputs


def test_lexical_weight_zero_trains_the_encoder_alone(data_dir, base_dir, tmp_path):
    from support.training import tiny_config

    from kefu.training.train import train

    config = tiny_config(data_dir, base_dir, epochs=1, int8=False)
    assert config.lexical_weight == 0  # the blend is opt-in
    result = train(config, tmp_path / "b", log=lambda line: None, show_progress=False)
    assert result.summary["lexical"] is None
    session = ort.InferenceSession(str(read_bundle(tmp_path / "b").model_path("fp32")))
    assert {o.name for o in session.get_outputs()} == set(ONNX_OUTPUTS.values())
