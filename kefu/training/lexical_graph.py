"""The lexical model inside the served graph: its TF-IDF and logistic regression as standard
ONNX operators appended to the exported graph, and the check that they reproduce the fit.

Kept apart from `lexical.py` (the n-gram features and the fit) because it speaks ONNX graph
surgery, not statistics; see that module's docstring for why the blend exists and is opt-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from kefu.serving.bundle.schema import ENCODER_OUTPUTS, ONNX_INPUTS, ONNX_OUTPUTS
from kefu.serving.classifier import softmax
from kefu.training.lexical import (
    KEY_BITS,
    MAX_NGRAM,
    PROBABILITY_FLOOR,
    LexicalCheckError,
    LexicalModel,
    Ngram,
)

PREFIX = "lexical_"  # every node and initialiser this module adds, so quantisation can skip them
ML_OPSET = 2  # LabelEncoder with int64 keys and values


def ngram_key(ngram: Ngram) -> int:
    """One int64 per n-gram, as the graph computes it: 20 bits per token id (+1), newest last."""
    key = 0
    for token in ngram:
        key = (key << KEY_BITS) + token + 1
    return key


class _GraphPart:
    """Nodes and initialisers to append to a graph, every name prefixed with PREFIX."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initialisers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: Any) -> str:
        """An initialiser; ints and lists of ints become int64, the rest keeps its dtype."""
        if PREFIX + name not in {i.name for i in self.initialisers}:
            integer = isinstance(value, int | list)
            array = np.asarray(value, dtype=np.int64 if integer else None)
            self.initialisers.append(numpy_helper.from_array(array, PREFIX + name))
        return PREFIX + name

    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        return self.multi(op, inputs, [output], **attributes)[0]

    def multi(self, op: str, inputs: list[str], outputs: list[str], **attributes: Any) -> list[str]:
        names = [PREFIX + output for output in outputs]
        domain = "ai.onnx.ml" if op == "LabelEncoder" else ""
        self.nodes.append(
            helper.make_node(op, inputs, names, name=names[0], domain=domain, **attributes)
        )
        return names

    def zeros(self, shape: str, output: str) -> str:
        fill = numpy_helper.from_array(np.zeros(1, dtype=np.float32))
        return self.node("ConstantOfShape", [shape], output, value=fill)


def _feature_values(part: _GraphPart, lexical: LexicalModel) -> tuple[str, str, str, str]:
    """Per (row, n-gram) present in the batch: row, feature column, unit-normalised tf-idf.

    Also returns the batch size (1-d). Each n-gram becomes one int64 key (`ngram_key`), a hash
    table (ai.onnx.ml LabelEncoder) gives its column (unknown n-grams: an extra column whose
    idf and weights are 0), and `Unique` counts repeats within a row.
    """
    n_features = len(lexical.ngrams)
    shift = part.constant("shift", 1 << KEY_BITS)
    ids = part.node("Add", [ONNX_INPUTS[0], part.constant("one_int", 1)], "ids_plus_one")
    keys, previous = [ids], ids
    axis = part.constant("axis1", [1])
    for n in range(2, MAX_NGRAM + 1):
        # key of the n-gram ending at position i: key of the (n-1)-gram ending at i-1, shifted
        start, last = part.constant("start0", [0]), part.constant(f"end{n}", [-1])
        prefix = part.node("Slice", [previous, start, last, axis], f"prefix{n}")
        start, last = part.constant(f"start{n}", [n - 1]), part.constant("end_max", [1 << 62])
        token = part.node("Slice", [ids, start, last, axis], f"last_token{n}")
        shifted = part.node("Mul", [prefix, shift], f"shifted{n}")
        previous = part.node("Add", [shifted, token], f"keys{n}")
        keys.append(previous)
    all_keys = part.node("Concat", keys, "keys", axis=1)
    columns = part.node(
        "LabelEncoder",
        [all_keys],
        "columns",
        keys_int64s=[ngram_key(ngram) for ngram in lexical.ngrams],
        values_int64s=list(range(n_features)),
        default_int64=n_features,
    )
    # one int64 per (row, column), then counted: row * (n_features + 1) + column
    shape = part.node("Shape", [all_keys], "key_shape")
    first = [part.constant("first", [0]), part.constant("second", [1])]
    batch = part.node("Slice", [shape, *first], "batch")
    batch_size = part.node("Squeeze", [batch], "batch_size")
    rows = part.node(
        "Range", [part.constant("zero_int", 0), batch_size, part.constant("step", 1)], "rows"
    )
    row_column = part.node("Unsqueeze", [rows, axis], "row_column")
    row_grid = part.node("Expand", [row_column, shape], "row_grid")
    stride = part.constant("stride", n_features + 1)
    offsets = part.node("Mul", [row_grid, stride], "row_offset")
    cells = part.node("Add", [offsets, columns], "cells")
    flat = part.node("Reshape", [cells, part.constant("flat", [-1])], "flat_cells")
    unique = ["cell", "first_index", "inverse", "repeats"]
    cell, _, _, repeats = part.multi("Unique", [flat], unique, sorted=1)
    row = part.node("Div", [cell, stride], "row")
    col = part.node("Mod", [cell, stride], "col")
    # sublinear tf times idf, then each row scaled to unit length
    count = part.node("Cast", [repeats], "count", to=onnx.TensorProto.FLOAT)
    log_count = part.node("Log", [count], "log_count")
    tf = part.node("Add", [log_count, part.constant("one", np.float32(1))], "sublinear_tf")
    idf = part.constant("idf", np.append(lexical.idf, np.float32(0)))
    idf_of = part.node("Gather", [idf, col], "idf_of", axis=0)
    tfidf = part.node("Mul", [tf, idf_of], "tfidf")
    square = part.node("Mul", [tfidf, tfidf], "square")
    zeros = part.zeros(batch, "zeros_per_row")
    squares = part.node(
        "ScatterElements", [zeros, row, square], "squares_per_row", axis=0, reduction="add"
    )
    norm = part.node("Sqrt", [squares], "norm_per_row")
    norm = part.node("Max", [norm, part.constant("norm_floor", np.float32(1e-12))], "safe_norm")
    norm_of = part.node("Gather", [norm, row], "norm_of", axis=0)
    return row, col, part.node("Div", [tfidf, norm_of], "value"), batch


def _head_scores(part: _GraphPart, lexical: LexicalModel) -> dict[str, str]:
    """The linear model's scores per head: the weights of the present n-grams only, summed.

    Every head's weights sit side by side, so one gather serves all heads.
    """
    row, col, value, batch = _feature_values(part, lexical)
    heads = list(lexical.heads)
    sizes = [lexical.coef[head].shape[1] for head in heads]
    coef = np.concatenate([lexical.coef[head] for head in heads], axis=1)
    coef = np.vstack([coef, np.zeros((1, coef.shape[1]), dtype=np.float32)])
    axis = part.constant("axis1", [1])
    weights = part.node("Gather", [part.constant("coef", coef), col], "coef_rows", axis=0)
    value_column = part.node("Unsqueeze", [value, axis], "value_column")
    contribution = part.node("Mul", [value_column, weights], "contribution")
    shape = part.node("Concat", [batch, part.constant("labels", [sum(sizes)])], "shape", axis=0)
    row_index = part.node("Unsqueeze", [row, axis], "row_index")
    zeros = part.zeros(shape, "zero_scores")
    dot = part.node("ScatterND", [zeros, row_index, contribution], "dot", reduction="add")
    intercept = part.constant("intercept", np.concatenate([lexical.intercept[h] for h in heads]))
    scores = part.node("Add", [dot, intercept], "all_scores")
    sizes_name = part.constant("sizes", sizes)
    per_head = part.multi("Split", [scores, sizes_name], [f"{h}_scores" for h in heads], axis=1)
    return dict(zip(heads, per_head, strict=True))


def blend_into_graph(
    encoder_graph: Path, lexical: LexicalModel, weight: float, out_path: Path
) -> Path:
    """Append the lexical model to `encoder_graph`; each blended head keeps its output name.

    Output per blended head: log((1 - weight) * softmax(encoder logits) + weight * lexical
    probabilities); the encoder's logits stay as outputs of their own (ENCODER_OUTPUTS, what
    `hf/` reproduces). Heads without a lexical classifier pass through unchanged. Only the
    n-grams a message has are touched: ONNX's own TfIdfVectorizer writes a dense vector of every
    feature and a dense product then reads every weight, 0.45 ms more per message on one core.
    """
    model = onnx.load(str(encoder_graph))
    graph = model.graph
    outputs = {output.name: output for output in graph.output}
    part = _GraphPart()
    for head, scores in _head_scores(part, lexical).items():
        name = ONNX_OUTPUTS[head]
        if name not in outputs:
            raise LexicalCheckError(f"the encoder graph has no output {name!r} to blend into")
        encoder_name = ENCODER_OUTPUTS[head]
        for graph_node in graph.node:
            graph_node.output[:] = [encoder_name if o == name else o for o in graph_node.output]
        encoder_output = graph.output.add()
        encoder_output.CopyFrom(outputs[name])
        encoder_output.name = encoder_name
        encoder_p = part.node("Softmax", [encoder_name], f"{head}_encoder_p", axis=-1)
        lexical_p = part.node("Softmax", [scores], f"{head}_lexical_p", axis=-1)
        encoder_weight = part.constant(f"{head}_encoder_weight", np.float32(1 - weight))
        lexical_weight = part.constant(f"{head}_lexical_weight", np.float32(weight))
        encoder_part = part.node("Mul", [encoder_p, encoder_weight], f"{head}_encoder_part")
        lexical_part = part.node("Mul", [lexical_p, lexical_weight], f"{head}_lexical_part")
        blended = part.node("Add", [encoder_part, lexical_part], f"{head}_blend")
        floor = part.constant("floor", np.float32(PROBABILITY_FLOOR))
        floored = part.node("Max", [blended, floor], f"{head}_blend_floored")
        part.nodes.append(helper.make_node("Log", [floored], [name], name=PREFIX + name))
    graph.node.extend(part.nodes)
    graph.initializer.extend(part.initialisers)
    if not any(opset.domain == "ai.onnx.ml" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path


def lexical_node_names(graph_path: Path) -> list[str]:
    """The nodes `blend_into_graph` added: dynamic quantisation leaves them in fp32."""
    graph = onnx.load(str(graph_path), load_external_data=False).graph
    return [graph_node.name for graph_node in graph.node if graph_node.name.startswith(PREFIX)]


def check_blend(
    blended_logits: dict[str, np.ndarray],
    encoder_logits: dict[str, np.ndarray],
    lexical: LexicalModel,
    rows: Sequence[Sequence[int]],
    weight: float,
    tolerance: float = 1e-4,
) -> float:
    """The graph's blended output vs the same blend computed in numpy; returns the max diff.

    Compared as probabilities (the log of a floored tiny probability is not a stable number).
    """
    expected_lexical = lexical.predict_proba(rows)
    worst = 0.0
    for head in lexical.heads:
        expected = (1 - weight) * softmax(encoder_logits[head]) + weight * expected_lexical[head]
        worst = max(worst, float(np.abs(np.exp(blended_logits[head]) - expected).max(initial=0)))
    if worst > tolerance:
        raise LexicalCheckError(
            f"the graph's lexical blend differs from the fitted model by up to {worst:.2e} in "
            f"probability on {len(rows)} dev rows (allowed {tolerance:.0e})"
        )
    return worst
