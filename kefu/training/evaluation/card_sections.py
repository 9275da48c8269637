"""The sections of the model card that describe how the model was made and where it falls short.

Separate from `model_card.py`, which orders them, so each stays short: the training record,
the calibration and abstention rules, the INT8 sentence and the known limits, each read from
the bundle (and the test metrics when there are some), never assumed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kefu.serving.bundle.reader import Bundle
from kefu.serving.bundle.schema import HF_DIR, HF_HEADS
from kefu.serving.taxonomy import HEADS
from kefu.training.evaluation.tables import fmt, points, table

HYPERPARAMETERS = ("epochs", "batch_size", "lr", "head_lr", "max_length", "class_weights", "seed")
# Evaluation-owned keys of metrics.json; other keys found in a bundle's metrics (e.g. written by
# training: timings, export checks) are kept and shown in the card's training section.
EVALUATION_KEYS = frozenset(
    {
        "model", "baseline", "int8", "n", "confusion", "bundle", "data", "train_data",
        "ece_bins", "public_dev", "seconds", "test_sets", "lead", "min_support", "by_source",
        "escalation", "int8_escalation", "conversations", "uncertainty", "politeness",
    }
)  # fmt: skip


def trained_on(bundle: Bundle) -> str:
    """The training files the bundle records, in words (never assumed)."""
    config = bundle.training_config
    files = [config[key] for key in ("train_data", "extra_train_data") if config.get(key)]
    flat = [
        str(item) for value in files for item in (value if isinstance(value, list) else [value])
    ]
    return ", ".join(f"`{path}`" for path in flat) if flat else "data not recorded in the bundle"


def training_section(bundle: Bundle) -> list[str]:
    """What `kefu train` recorded (metrics.json "training", training_config.json), if anything."""
    config, summary = bundle.training_config, bundle.metrics.get("training", {})
    rows_count = summary.get("rows", {})
    rows = []
    for split in ("train", "dev"):
        named = config.get(f"{split}_data")
        files = named if isinstance(named, list) else [named] if named else []
        source = ", ".join(f"`{path}`" for path in files) or (
            "held out from train" if split == "dev" and config else None
        )
        if source or split in rows_count:
            rows.append(
                [f"{split} data", f"{source or '`?`'} ({fmt(rows_count.get(split, '?'))} rows)"]
            )
    rows.append(["data hash", f"`{bundle.manifest.data_hash or 'not recorded'}`"])
    if "seconds_total" in summary:
        rows.append(
            [
                "training time",
                f"{_duration(summary['seconds_total'])} in all, {_duration(summary.get('seconds_loop', 0))} "
                f"in the training loop, on {summary.get('threads', '?')} CPU threads"
                f"{', bf16 forward pass' if summary.get('forward_precision') == 'bf16' else ''}",
            ]
        )
    if "steps" in summary:
        rows.append(
            [
                "steps",
                f"{summary['steps']}, best at step {summary.get('best_step')} ({summary.get('stopped_because')})",
            ]
        )
    settings = [f"{key} {config[key]}" for key in HYPERPARAMETERS if key in config]
    if settings:
        rows.append(["settings", ", ".join(settings)])
    if summary.get("dev_macro_f1"):
        rows.append(
            [
                # what early stopping read: every class present in dev, however few its rows
                "dev macro-F1 (training's early stopping, all classes; the test tables "
                "average classes with enough rows)",
                ", ".join(f"{h} {fmt(v)}" for h, v in summary["dev_macro_f1"].items()),
            ]
        )
    parity = summary.get("onnx_parity")
    if parity:
        rows.append(
            [
                "export checks (dev)",
                f"fp32 ONNX vs torch max abs logit diff {parity.get('max_abs_diff', float('nan')):.1e}, "
                f"{parity.get('argmax_mismatches')} argmax mismatches; tokenizer parity on "
                f"{summary.get('tokenizer_parity_texts', '?')} texts",
            ]
        )
    lexical = summary.get("lexical")
    if lexical:
        rows.append(
            [
                "lexical model",
                f"TF-IDF + logistic regression of {lexical['ngrams']:,} token n-grams, "
                f"{lexical['weight']:.0%} of the served probabilities of "
                f"{', '.join(lexical['heads'])}; graph vs fitted model max probability diff "
                f"{lexical['max_abs_diff']:.1e} on dev",
            ]
        )
    rows += [["note", note.replace("|", "/")] for note in bundle.manifest.notes]
    test_sets = set(bundle.metrics.get("test_sets") or [])
    for section, value in bundle.metrics.items():
        if section not in EVALUATION_KEYS | test_sets and section != "training":
            rows += [[f"{section}: {key}", _short(item)] for key, item in _flatten(value)]
    if not config and not summary:
        rows.append(["training record", "none in the bundle (not built by `kefu train`)"])
    lines = table(["item", "value"], rows)
    if config:
        full = table(["key", "value"], [[key, _short(value)] for key, value in _flatten(config)])
        lines += [
            "",
            "<details><summary>Full training configuration</summary>",
            "",
            *full,
            "",
            "</details>",
        ]
    return lines


def abstention_section(bundle: Bundle, block: Mapping[str, Any], ece_bins: int) -> list[str]:
    """The rule per head, with the dev target it was chosen for and what it does on `block`."""
    dev = bundle.metrics.get("training", {}).get("calibration", {})
    rows = []
    for head in HEADS:
        test, chosen = block["model"][head], dev.get(head, {})
        rows.append(
            [
                head,
                fmt(test["temperature"]),
                fmt(test["threshold"]),
                fmt(test["margin"]),
                fmt(chosen.get("target_precision")),
                fmt(chosen.get("answered_precision")),
                fmt(test["ece_uncalibrated"]),
                fmt(test["ece"]),
                fmt(test["abstain_rate"]),
                fmt(test["answered_accuracy"]),
            ]
        )
    header = [
        "head",
        "temperature",
        "threshold",
        "margin",
        "dev target precision",
        "dev answered precision",
    ]
    header += ["test ECE T=1", "test ECE", "test abstain rate", "test answered accuracy"]
    return [
        "Probabilities are divided by a per-head temperature fitted on the dev split. A head abstains "
        "(`abstain: true`) when its top calibrated probability is below `threshold` or the top-1 minus "
        "top-2 probability is below `margin`; both were chosen on dev so that accuracy on the answered "
        "messages reaches the target precision. An abstaining intent makes the bot ask the customer to "
        "choose (action `clarify`, reason `low_confidence`), and hands over to a person only if the "
        "conversation was already clarified. Both are stored in the bundle and can be overridden at serve time. "
        f"ECE: {ece_bins} equal-width bins, before (T=1) and after scaling.",
        "",
        *table(header, rows),
    ]


def int8_sentence(metrics: Mapping[str, Any]) -> str:
    int8 = metrics["int8"]
    if not any(int8[head].get("available") for head in HEADS):
        return "The bundle ships no INT8 model."
    deltas = ", ".join(
        f"{head} {points(int8[head]['macro_f1'], metrics['model'][head]['macro_f1'])}"
        for head in HEADS
    )
    eces = ", ".join(f"{head} {fmt(int8[head].get('ece'))}" for head in HEADS)
    abstains = ", ".join(f"{head} {fmt(int8[head].get('abstain_rate'))}" for head in HEADS)
    return (
        f"INT8 (dynamic quantisation, one message per call as serving runs it) minus fp32 "
        f"macro-F1, in points: {deltas}. "
        f"INT8 ECE: {eces}; INT8 abstain rate: {abstains}."
    )


def limits(bundle: Bundle, metrics: Mapping[str, Any] | None, licence: str) -> list[str]:
    limits = [
        f"- Trained on {trained_on(bundle)}; accuracy on traffic unlike it is lower: measure on "
        "your own labelled logs and retrain with `kefu train` when it falls short.",
        "- One message at a time: conversation history only enters through routing rules (turn count, "
        "repeated intent).",
        "- Long messages keep their first and last tokens only; requests in the middle can be missed.",
        "- Urgency and emotion are judgement calls: their labels are noisier than intent labels.",
        "- Calibration was fitted on the dev split of the same corpus; on text unlike it confidences "
        "can be too high, so abstention catches fewer errors there.",
    ]
    missing = {
        head: [
            label
            for label, scores in metrics["model"][head]["per_class"].items()
            if scores["support"] == 0
        ]
        for head in HEADS
        if metrics is not None and metrics["model"][head]["n"]
    }
    named = "; ".join(
        f"{head}: {', '.join(f'`{label}`' for label in labels)}"
        for head, labels in missing.items()
        if labels
    )
    if named:
        limits.append(f"- Labels with no test rows, so unmeasured here: {named}.")
    if any("datasets/real" in str(path) for path in bundle.training_config.get("train_data") or []):
        limits.append(
            "- Trained on kefu's annotated real messages (datasets/real: JD and Alipay chat logs "
            "published as research material, no commercial licence stated): research use only."
        )
    if "NON-COMMERCIAL" in licence.upper():
        limits.append(
            "- The base model's weights are for non-commercial research use only; so is this model."
        )
    return limits


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as (dotted key, scalar or list) pairs, for a two-column table."""
    if not isinstance(value, Mapping):
        return [(prefix, value)] if prefix else []
    pairs = []
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        pairs += _flatten(item, name) if isinstance(item, Mapping) else [(name, item)]
    return pairs


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def front_matter(bundle: Bundle, metrics: Mapping[str, Any] | None, licence: str) -> list[str]:
    """Hugging Face model-card metadata (YAML between --- lines), from the bundle's own record."""
    import yaml

    non_commercial = "NON-COMMERCIAL" in licence.upper()
    files = bundle.training_config.get("train_data") or []
    meta: dict[str, Any] = {
        "language": ["zh"],
        "license": "other" if non_commercial else "unknown",
        "license_name": "non-commercial-research" if non_commercial else "see the base model",
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["kefu", "customer-service", "intent-classification", "onnx", "chinese"],
        "base_model": bundle.manifest.base_model,
        "datasets": [files] if isinstance(files, str) else list(files),
        "metrics": ["macro_f1", "accuracy", "ece"],
    }
    if metrics is not None:
        from kefu.training.evaluation.report import set_blocks

        name, block = set_blocks(metrics)[0]
        meta["model-index"] = [
            {
                "name": f"kefu {bundle.manifest.model_version}",
                "results": [
                    {
                        "task": {"type": "text-classification", "name": head},
                        "dataset": {"name": f"kefu {name} test", "type": block["data"]["file"]},
                        "metrics": [
                            {"type": "macro_f1", "value": block["model"][head]["macro_f1"]},
                            {"type": "accuracy", "value": block["model"][head]["accuracy"]},
                        ],
                    }
                    for head in HEADS
                    if block["model"][head]["macro_f1"] is not None
                ],
            }
        ]
    dumped = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False).rstrip()
    return ["---", dumped, "---", ""]


def hf_usage(bundle: Bundle) -> list[str]:
    """How to load the bundle's transformers copy (`hf/`) with transformers and get the ONNX logits back."""
    if bundle.hf_path is None:
        return [f"This bundle has no `{HF_DIR}/` folder (it was not exported by `kefu train`)."]
    lexical = (bundle.metrics.get("training") or {}).get("lexical")
    if lexical:
        same = (
            f"The bundle's `{HF_DIR}/` folder is the model's encoder and heads for `transformers` "
            "(encoder, tokenizer, a config with the label maps of all three heads, head weights "
            f"in `{HF_HEADS}`). The served graph blends their probabilities with a lexical "
            f"model of token n-grams (weight {lexical['weight']}), which has no `transformers` "
            "form; the ONNX graph also outputs the encoder's own logits as `<head>_encoder_logits`."
        )
        match = "the logits then match those `<head>_encoder_logits` within 1e-4:"
    else:
        same = (
            f"The bundle's `{HF_DIR}/` folder is the same model for `transformers` (encoder, tokenizer, "
            "a config with the label maps of all three heads, head weights in "
            f"`{HF_HEADS}`)."
        )
        match = "the logits then match the ONNX graph within 1e-4:"
    return [
        f"{same} Apply kefu's text normalisation first, at the version this model was trained "
        f"with (`kefu.serving.normalize.normalize_text(text, "
        f"version={bundle.manifest.text_normalization})`: NFKC, chat artefacts to placeholders, "
        f"emoji to their names from version 2); {match}",
        "",
        "```python",
        "import torch",
        "from safetensors.torch import load_file",
        "from transformers import AutoModel, AutoTokenizer",
        "",
        "from kefu.serving.normalize import normalize_text",
        "",
        f'hf = "path/to/this/bundle/{HF_DIR}"  # this folder\'s {HF_DIR}/',
        "tokenizer = AutoTokenizer.from_pretrained(hf)",
        "encoder = AutoModel.from_pretrained(hf).eval()",
        f'heads = load_file(f"{{hf}}/{HF_HEADS}")',
        f'texts = [normalize_text("我的快递三天没动了😡", version={bundle.manifest.text_normalization})]',
        'batch = tokenizer(texts, padding=True, return_tensors="pt")',
        "with torch.no_grad():",
        "    hidden = encoder(**batch).last_hidden_state",
        'mask = batch["attention_mask"].unsqueeze(-1).float()',
        "pooled = (hidden * mask).sum(1) / mask.sum(1)  # mean pooling, as in training",
        'logits = pooled @ heads["intent.weight"].T + heads["intent.bias"]',
        'id2label = encoder.config.kefu_heads["intent"]["id2label"]',
        "print(id2label[str(int(logits.argmax()))])",
        "```",
    ]
