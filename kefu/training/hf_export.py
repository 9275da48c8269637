"""The model in Hugging Face form: a `transformers`-loadable copy that ships inside the bundle.

Usage (what the model card shows a data scientist):
    tokenizer = AutoTokenizer.from_pretrained("models/default/hf")
    encoder = AutoModel.from_pretrained("models/default/hf")
    heads = safetensors.torch.load_file("models/default/hf/heads.safetensors")
    batch = tokenizer([normalize_text(text, version=<the bundle's text_normalization>)], ...)
    pooled = mean of encoder(**batch).last_hidden_state over the attention mask
    intent_logits = pooled @ heads["intent.weight"].T + heads["intent.bias"]
The config carries `kefu_heads` ({head: {"id2label", "label2id"}}), `kefu_pooling` ("mean")
and `kefu_untrained_heads`, so the label order never has to be guessed; the ONNX graphs carry
the same label lists in their metadata (`stamp_onnx_metadata`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from safetensors.torch import save_file

from kefu.serving.bundle.schema import HF_HEADS, ONNX_METADATA
from kefu.serving.taxonomy import HEADS
from kefu.training.base_tokenizer import load_base_tokenizer
from kefu.training.model import MultiHeadClassifier


def save_hf(
    model: MultiHeadClassifier,
    base_model_dir: Path,
    labels: Mapping[str, Sequence[str]],
    out_dir: Path,
    *,
    model_version: str,
    untrained_heads: Sequence[str] = (),
) -> Path:
    """Encoder + tokenizer + label maps + head weights in `out_dir` (created afresh)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    encoder = model.encoder
    config = encoder.config
    config.kefu_heads = {
        head: {
            "id2label": {str(i): label for i, label in enumerate(labels[head])},
            "label2id": {label: i for i, label in enumerate(labels[head])},
        }
        for head in HEADS
    }
    config.kefu_pooling = "mean"
    config.kefu_model_version = model_version
    config.kefu_untrained_heads = list(untrained_heads)
    encoder.save_pretrained(out_dir, safe_serialization=True)
    load_base_tokenizer(base_model_dir).save_pretrained(out_dir)
    weights = {}
    for head in HEADS:
        for name, tensor in model.heads[head].state_dict().items():  # weight, bias
            weights[f"{head}.{name}"] = tensor.detach().contiguous().clone()
    save_file(weights, str(out_dir / HF_HEADS), metadata={"heads": ",".join(HEADS)})
    return out_dir


def stamp_onnx_metadata(
    onnx_path: Path, labels: Mapping[str, Sequence[str]], model_version: str
) -> Path:
    """Write the label lists and the model version into the graph's metadata_props."""
    import onnx

    graph = onnx.load(str(onnx_path))
    values = {
        ONNX_METADATA["model_version"]: model_version,
        ONNX_METADATA["labels"]: json.dumps(
            {h: list(labels[h]) for h in HEADS}, ensure_ascii=False
        ),
    }
    kept = [prop for prop in graph.metadata_props if prop.key not in values]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    for key, value in values.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(onnx_path))
    return onnx_path
