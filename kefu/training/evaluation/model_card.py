"""The bundle's model card (`README.md` inside the bundle): what the model is, how well it does.

Rendered from the bundle itself (manifest, labels, training config and record, calibration)
and, once `kefu evaluate` has run, its test metrics; `kefu train` writes the same card without
them. So the card always describes the files it ships with, whatever data they were trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kefu.serving.bundle import Bundle
from kefu.serving.taxonomy import HEADS
from kefu.training.base_model import M3E_SMALL
from kefu.training.evaluation.report import fmt, points, public_dev_table, summary_table, table

HYPERPARAMETERS = ("epochs", "batch_size", "lr", "head_lr", "max_length", "class_weights", "seed")
# Evaluation-owned keys of metrics.json; other keys found in a bundle's metrics (e.g. written by
# training: timings, export checks) are kept and shown in the card's training section.
EVALUATION_KEYS = frozenset(
    {
        "model",
        "baseline",
        "int8",
        "n",
        "confusion",
        "bundle",
        "data",
        "train_data",
        "ece_bins",
        "public_dev",
        "seconds",
    }
)


def base_model_licence(base_model: str, bundle: Bundle) -> str:
    """The licence sentence recorded at training time, else what kefu knows about the base."""
    recorded = [*_flatten(bundle.metrics.get("training", {})), *_flatten(bundle.training_config)]
    for key, value in recorded:
        if "licen" in key.lower() and isinstance(value, str) and value:
            return value
    name = base_model.lower()
    if "m3e" in name:
        return M3E_SMALL.licence
    if "tiny" in name or "random" in name:
        return "randomly initialised test encoder: no pretrained weights, no licence restriction."
    return f"not recorded in the bundle: read the model card of `{base_model}` before any use."


def render_model_card(
    bundle: Bundle, metrics: Mapping[str, Any] | None = None, report_link: str | None = None
) -> str:
    """The card; without `metrics` (straight after training) the test sections say so."""
    manifest = bundle.manifest
    licence = base_model_licence(manifest.base_model, bundle)
    sizes = {head: len(bundle.labels[head]) for head in HEADS}
    lines = [
        f"# kefu triage model {manifest.model_version}",
        "",
        f"Reads one Chinese e-commerce customer-service message and returns its intent "
        f"({sizes['intent']} labels), urgency ({sizes['urgency']}) and emotion ({sizes['emotion']}) "
        "with calibrated confidences; kefu's routing turns these into a queue, a priority and an "
        "action (bot, clarify or human).",
        "",
        "## Model",
        "",
        *table(
            ["field", "value"],
            [
                ["model version", f"`{manifest.model_version}`"],
                ["created", manifest.created],
                ["base model", f"`{manifest.base_model}`"],
                ["base model licence", licence.replace("|", "/")],
                [
                    "architecture",
                    "shared encoder, mean pooling, one linear head per task; ONNX fp32 + INT8",
                ],
                ["max length", f"{manifest.max_length} tokens, head+tail truncation"],
                ["serving default variant", manifest.default_variant],
                ["labels", ", ".join(f"{head} {len(bundle.labels[head])}" for head in HEADS)],
            ],
        ),
        "",
        "## Training data and run",
        "",
        *_training_section(bundle),
        "",
        "## Evaluation",
        "",
    ]
    if metrics is None:
        lines += [
            "Not evaluated yet: this card was written by `kefu train` (dev-set numbers above). Run "
            "`kefu evaluate --bundle DIR --data TEST_FILE -o DIR` for test metrics, the TF-IDF "
            "baseline and the public dev sets.",
            "",
            "## Intended use",
            "",
            *INTENDED_USE,
            "",
            "## Known limits",
            "",
            *_limits(bundle, None, licence),
        ]
        return "\n".join(lines).rstrip() + "\n"
    lines += [
        f"On `{metrics['data']['file']}` ({metrics['n']} rows); baseline = character 1-3-gram TF-IDF + "
        f"logistic regression fitted on `{metrics['train_data']['file']}`. Macro-F1 gains in points. "
        f"The model columns are the fp32 ONNX graph; serving runs the {manifest.default_variant} one"
        f"{' (INT8 columns)' if manifest.default_variant == 'int8' else ''}.",
        "",
        *summary_table(metrics),
        "",
        _int8_sentence(metrics),
    ]
    if report_link:
        lines += [
            "",
            f"Per-class tables, confusion matrices and reliability diagrams: [{report_link}]({report_link}).",
        ]
    lines += ["", "## Calibration and abstention", "", *_abstention_section(bundle, metrics)]
    lines += ["", "## Public real-text dev sets", ""]
    if metrics.get("public_dev"):
        lines += [
            "These are reviews and social posts, not service chats (except the JD customer messages), "
            "and their labels are mapped onto ours, so expect lower numbers than on service messages; "
            "they show how the training data transfers to text nobody here wrote, and the trend "
            "matters more than the level. Never trained or tuned on.",
            "",
            *public_dev_table(metrics["public_dev"]),
        ]
    else:
        lines.append(
            "Not evaluated (the public dev folder was not available when this card was written)."
        )
    lines += [
        "",
        "## Intended use",
        "",
        *INTENDED_USE,
        "",
        "## Known limits",
        "",
        *_limits(bundle, metrics, licence),
    ]
    return "\n".join(lines).rstrip() + "\n"


INTENDED_USE = [
    "- Triage of single customer messages in Chinese e-commerce service chats (shop and platform "
    "support): suggest a queue, a priority and whether a human should take over.",
    "- A human stays in the loop: unsure messages are clarified, then go to agents; the model never answers "
    "customers or takes decisions about refunds, accounts or complaints on its own.",
    "- Not for other languages or domains, nor for judging or profiling customers.",
]


def _training_section(bundle: Bundle) -> list[str]:
    """What `kefu train` recorded (metrics.json "training", training_config.json), if anything."""
    config, summary = bundle.training_config, bundle.metrics.get("training", {})
    rows_count = summary.get("rows", {})
    rows = []
    for split in ("train", "dev"):
        source = config.get(f"{split}_data") or (
            "held out from train" if split == "dev" and config else None
        )
        if source or split in rows_count:
            rows.append(
                [f"{split} data", f"`{source or '?'}` ({fmt(rows_count.get(split, '?'))} rows)"]
            )
    rows.append(["data hash", f"`{bundle.manifest.data_hash or 'not recorded'}`"])
    if "seconds_total" in summary:
        rows.append(
            [
                "training time",
                f"{_duration(summary['seconds_total'])} in all, {_duration(summary.get('seconds_loop', 0))} "
                f"in the training loop, on {summary.get('threads', '?')} CPU threads",
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
            ["dev macro-F1", ", ".join(f"{h} {fmt(v)}" for h, v in summary["dev_macro_f1"].items())]
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
    rows += [["note", note.replace("|", "/")] for note in bundle.manifest.notes]
    for section, value in bundle.metrics.items():
        if section not in EVALUATION_KEYS and section != "training":
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


def _abstention_section(bundle: Bundle, metrics: Mapping[str, Any]) -> list[str]:
    """The rule per head, with the dev target it was chosen for and what it does on the test split."""
    dev = bundle.metrics.get("training", {}).get("calibration", {})
    rows = []
    for head in HEADS:
        test, chosen = metrics["model"][head], dev.get(head, {})
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
        f"ECE: {metrics['ece_bins']} equal-width bins, before (T=1) and after scaling.",
        "",
        *table(header, rows),
    ]


def _int8_sentence(metrics: Mapping[str, Any]) -> str:
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
        f"INT8 (dynamic quantisation) minus fp32 macro-F1, in points: {deltas}. "
        f"INT8 ECE: {eces}; INT8 abstain rate: {abstains}."
    )


def trained_on(bundle: Bundle) -> str:
    """The training files the bundle records, in words (never assumed)."""
    config = bundle.training_config
    files = [config[key] for key in ("train_data", "extra_train_data") if config.get(key)]
    flat = [
        str(item) for value in files for item in (value if isinstance(value, list) else [value])
    ]
    return ", ".join(f"`{path}`" for path in flat) if flat else "data not recorded in the bundle"


def _limits(bundle: Bundle, metrics: Mapping[str, Any] | None, licence: str) -> list[str]:
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
    missing = [
        head
        for head in HEADS
        if metrics is not None
        and any(scores["support"] == 0 for scores in metrics["model"][head]["per_class"].values())
    ]
    if missing:
        limits.append(
            f"- Some labels have no test rows ({', '.join(missing)}): their scores are unmeasured here."
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
