"""The bundle's model card (`README.md` inside the bundle): what the model is, how well it does.

Rendered from the bundle itself (manifest, labels, training config and record, calibration)
and, once `kefu evaluate` has run, its test metrics; `kefu train` writes the same card without
them. So the card always describes the files it ships with, whatever data they were trained on.
It leads with the lead test set (real customer messages for the default model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kefu.serving.bundle.reader import Bundle
from kefu.serving.taxonomy import HEADS
from kefu.training.base_model import M3E_SMALL
from kefu.training.evaluation.card_sections import (
    _flatten,
    abstention_section,
    front_matter,
    hf_usage,
    int8_sentence,
    limits,
    training_section,
)
from kefu.training.evaluation.report import set_blocks, set_sections
from kefu.training.evaluation.score_tables import (
    public_dev_table,
    summary_table,
)
from kefu.training.evaluation.tables import table

INTENDED_USE = [
    "- Triage of single customer messages in Chinese e-commerce service chats (shop and platform "
    "support): suggest a queue, a priority and whether a human should take over.",
    "- A human stays in the loop: unsure messages are clarified, then go to agents; the model never answers "
    "customers or takes decisions about refunds, accounts or complaints on its own.",
    "- Not for other languages or domains, nor for judging or profiling customers.",
]


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
        *front_matter(bundle, metrics, licence),
        f"# kefu triage model {manifest.model_version}",
        "",
        f"Reads one Chinese e-commerce customer-service message and returns its intent "
        f"({sizes['intent']} labels), urgency ({sizes['urgency']}) and emotion ({sizes['emotion']}) "
        "with calibrated confidences; kefu's routing turns these into a queue, a priority and an "
        "action (the bot answers, asks the customer to clarify, or hands over to a person).",
        "",
    ]
    if metrics is not None:
        lines += ["## Evaluation", "", *_evaluation(bundle, metrics, report_link), ""]
    lines += [
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
                ["labels", ", ".join(f"{head} {size}" for head, size in sizes.items())],
            ],
        ),
        "",
        "## Training data and run",
        "",
        *training_section(bundle),
        "",
        "## Loading it outside kefu",
        "",
        *hf_usage(bundle),
        "",
    ]
    if metrics is None:
        lines += [
            "## Evaluation",
            "",
            "Not evaluated yet: this card was written by `kefu train` (dev-set numbers above). Run "
            "`kefu evaluate --bundle DIR --data TEST_FILE -o DIR` for test metrics, the TF-IDF "
            "baseline and the public dev sets.",
            "",
        ]
    else:
        (_, lead), ece_bins = set_blocks(metrics)[0], metrics["ece_bins"]
        lines += ["## Calibration and abstention", "", *abstention_section(bundle, lead, ece_bins)]
        lines += ["", "## Public real-text dev sets", "", *_public_dev(metrics), ""]
    lines += ["## Intended use", "", *INTENDED_USE, "", "## Known limits", ""]
    lead_block = set_blocks(metrics)[0][1] if metrics is not None else None
    lines += limits(bundle, lead_block, licence)
    return "\n".join(lines).rstrip() + "\n"


def _evaluation(bundle: Bundle, metrics: Mapping[str, Any], report_link: str | None) -> list[str]:
    default = bundle.manifest.default_variant
    lines = [
        "Baseline = character 1-3-gram TF-IDF + logistic regression fitted on the same training "
        f"data (`{metrics['train_data']['file']}`). Macro-F1 averages the classes with at least "
        f"{metrics.get('min_support', 1)} test messages; gains in points. The model columns are "
        f"the fp32 ONNX graph; serving runs the {default} one"
        f"{' (INT8 columns)' if default == 'int8' else ''}.",
    ]
    for name, block in set_blocks(metrics):
        lines += [
            "",
            f"### Test set `{name}`: `{block['data']['file']}` ({block['n']} messages)",
            "",
            *summary_table(block),
        ]
        lines += set_sections(block, metrics.get("min_support", 1))
        lines += ["", int8_sentence(block)]
    if report_link:
        lines += [
            "",
            f"Per-class tables, confusion matrices and reliability diagrams: "
            f"[{report_link}]({report_link}).",
        ]
    return lines


def _public_dev(metrics: Mapping[str, Any]) -> list[str]:
    if not metrics.get("public_dev"):
        return ["Not evaluated (no public dev folder was given when this card was written)."]
    return [
        "These are reviews and social posts, not service chats (except the JD customer messages), "
        "and their labels are mapped onto ours, so expect lower numbers than on service messages; "
        "they show how the training data transfers to text nobody here wrote, and the trend "
        "matters more than the level. Never trained or tuned on.",
        "",
        *public_dev_table(metrics["public_dev"]),
    ]
