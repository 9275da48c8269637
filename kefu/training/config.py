"""The training configuration: one frozen dataclass whose defaults train the default model.

Usage: `load_config("kefu/training/configs/default.yaml", ["epochs=2", "lr=3e-5"])`.

Values come from the dataclass defaults, then the YAML file, then `key=value` overrides (the
CLI's `--set`); a per-head mapping is overridden one head at a time with `key.head=value`
(`--set loss_weights.emotion=0.5`). An unknown key or a bad value raises ConfigError naming
the field and the value. `TrainConfig.to_dict()` is what the bundle stores.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kefu.errors import ConfigError
from kefu.serving.normalize import NORMALIZATION_VERSION
from kefu.serving.taxonomy import HEADS
from kefu.training.config_checks import PER_HEAD_KEYS, check_config
from kefu.training.config_parsing import check_known_keys, close_hint, coerce_value, read_yaml


def _per_head(intent: float, urgency: float, emotion: float) -> Any:
    return field(default_factory=lambda: {"intent": intent, "urgency": urgency, "emotion": emotion})


@dataclass(frozen=True)
class TrainConfig:
    # --- data: files the loader reads (JSONL, CSV, TSV, Parquet, xlsx; .gz/.zst text); one path
    # or a list of paths; `--data-dir D` sets D/train.jsonl and D/dev.jsonl
    train_data: list[str] = field(default_factory=lambda: ["datasets/seed/train.jsonl"])
    # how often each training file's rows are drawn per epoch, one number per train_data file
    # (2.0 = every row twice, 0.5 = a seeded half each epoch); empty = 1.0 for every file
    train_weights: list[float] = field(default_factory=list)
    # dev files for early stopping, calibration and export checks; empty = hold out dev_fraction
    dev_data: list[str] = field(default_factory=lambda: ["datasets/seed/dev.jsonl"])
    # share of train held out as dev when dev_data is "" (split by a hash of the text)
    dev_fraction: float = 0.1
    # a head with fewer labelled training rows than this is not trained (marked untrained in
    # the manifest; serving returns no label for it and routing ignores it)
    min_head_labels: int = 50
    # column names in the data files (for your own logs)
    text_column: str = "text"
    intent_column: str = "intent"
    urgency_column: str = "urgency"
    emotion_column: str = "emotion"
    id_column: str = "id"
    # text encoding of CSV/TSV/JSONL data files; "" = detected per file (BOM, UTF-8, GB18030)
    data_encoding: str = ""
    # a CSV/TSV record over more physical lines than this is rejected (a broken quote, usually)
    max_record_lines: int = 5

    # --- model
    # a model directory, a Hugging Face hub id, or "m3e-small" (see kefu/training/base_model.py)
    base_model: str = "m3e-small"
    # tokens per message incl. [CLS]/[SEP]; longer ones keep head+tail (the vocabulary is per
    # character for Chinese, so 128 tokens is about 128 characters)
    max_length: int = 128
    # the text normalisation the model learns and is served with (kefu/serving/normalize.py):
    # 1 to the newest; the bundle records it
    text_normalization: int = NORMALIZATION_VERSION
    # dropout before the heads
    dropout: float = 0.1
    # keep the word embeddings fixed: 11M of m3e-small's 24M parameters; about 30% less CPU per
    # step, and rare characters stay where pretraining put them
    freeze_embeddings: bool = True

    # --- optimisation
    # passes over the training data (early stopping may end sooner)
    epochs: int = 3
    # stop after this many optimiser steps in total; 0 = no limit
    max_steps: int = 0
    # rows per training step
    batch_size: int = 32
    # rows per step when only predicting (dev evaluation, export checks)
    eval_batch_size: int = 128
    # AdamW learning rate of the encoder's top layer (1e-4 beat 5e-5 on seed dev: 0.851 vs 0.844)
    lr: float = 1e-4
    # each lower encoder layer gets lr * layer_lr_decay ** depth (1.0 = the same everywhere)
    layer_lr_decay: float = 1.0
    # learning rate of the three linear heads (new weights learn faster)
    head_lr: float = 1e-3
    # AdamW's decoupled weight decay (the usual BERT fine-tuning value; not tuned here)
    weight_decay: float = 0.01
    # share of steps with a linear warm-up, then linear decay to 0
    warmup_ratio: float = 0.06
    # clip the gradient norm to this value; 0 = no clipping
    max_grad_norm: float = 1.0
    # per-head weight in the summed cross-entropy loss
    loss_weights: dict[str, float] = _per_head(1.0, 1.0, 1.0)
    # class weights against imbalance: none, sqrt (1/sqrt(freq)) or balanced (1/freq)
    class_weights: str = "none"
    # cross-entropy label smoothing; 0.1 read a little better but made the escalation rule's
    # probabilities softer (docs/experiments.md, run H), so the default keeps hard targets
    label_smoothing: float = 0.0
    # exponential moving average of the weights, updated every step; dev evaluation, the best
    # checkpoint and the exported model use the average (0 = off, the raw weights)
    ema_decay: float = 0.0
    # arithmetic of the training forward pass: fp32, or bf16 autocast (weights and optimiser
    # stay fp32); "auto" = bf16 where the CPU has native bf16 matrix units (AMX), else fp32
    precision: str = "fp32"
    # batches are drawn from pools of this many batches sorted by length (less padding)
    bucket_batches: int = 50

    # --- evaluation and early stopping
    # evaluate on dev every this many steps; 0 = once per epoch
    eval_every: int = 0
    # stop after this many evaluations in a row without a better mean dev macro-F1; 0 = never
    patience: int = 2
    # stop the training loop after this many minutes (then export, calibrate, save); 0 = none
    time_budget_minutes: float = 0.0

    # --- calibration: each head abstains below a threshold / margin chosen on dev so that
    # precision on the messages it does answer reaches this target
    target_precision: dict[str, float] = _per_head(0.95, 0.90, 0.90)
    # ... while abstaining on at most this share of dev (1.0 = no cap); an abstaining intent
    # makes the bot ask the customer to clarify, so this caps the clarify rate
    max_abstain_rate: dict[str, float] = _per_head(1.0, 1.0, 1.0)

    # --- export
    # share of the served probabilities that comes from a TF-IDF + logistic regression model of
    # the messages' token n-grams, built into the ONNX graph (kefu/training/lexical.py); 0 = the
    # encoder alone (the default: docs/experiments.md, run Z)
    lexical_weight: float = 0.0
    # also write the INT8 model
    int8: bool = True
    # INT8 may lose at most this many macro-F1 points per head, else fp32 stays the default
    int8_max_drop: float = 1.0
    # max |fp32 ONNX logit - torch logit| on dev; export fails above it
    parity_tolerance: float = 1e-4

    # --- run
    # seeds the seed-row draw, the batch order, dropout and the heads' initial weights: one
    # seed, one model (training is deterministic on a given machine)
    seed: int = 13
    # torch threads; 0 = all cores
    threads: int = 0
    # version string in the manifest and the ONNX metadata; "" = kefu-<data hash>-<model hash>
    # (8 hex digits each), so the same data and config give the same version and ONNX bytes
    model_version: str = ""

    def __post_init__(self) -> None:
        check_config(self)  # finite, in range, known choices, one value per head

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CONFIG_KEYS = tuple(item.name for item in dataclasses.fields(TrainConfig))


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Defaults, then the YAML file at `path`, then `key=value` overrides, validated."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}  # where each value came from, for a type error to name
    if path is not None:
        values = read_yaml(Path(path))
        check_known_keys(values, CONFIG_KEYS, f"config file {path}")
        sources = dict.fromkeys(values, f"config file {path}")
    overridden = {override.partition("=")[0].strip() for override in overrides}
    if "train_data" in overridden and "train_weights" not in overridden:
        values.pop("train_weights", None)  # weights belong to the files they were set for
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not key=value (e.g. --set epochs=2)")
        value = yaml.safe_load(raw) if raw.strip() else ""
        name, _, head = key.partition(".")
        check_known_keys([name], CONFIG_KEYS, f"override {override!r}")
        if head:
            if name not in PER_HEAD_KEYS:
                raise ConfigError(f"config key {name!r} has no per-head values ({key!r})")
            if head not in HEADS:
                raise ConfigError(
                    f"config key {key!r}: unknown head {head!r}{close_hint(head, HEADS)}; "
                    f"heads are {list(HEADS)}"
                )
            merged = dict(values.get(name) or _defaults()[name])
            merged[head] = value
            value = merged
        values[name] = value
        sources[name] = f"override {override!r}"
    return build_config(values, sources=sources)


def build_config(
    values: Mapping[str, Any], where: str = "config", sources: Mapping[str, str] | None = None
) -> TrainConfig:
    """A TrainConfig from plain values; every key and value is type-checked first. A bad value
    is reported as from `sources[key]` (a file, an override) when given, else from `where`."""
    check_known_keys(values, CONFIG_KEYS, where)
    hints, defaults = typing.get_type_hints(TrainConfig), _defaults()
    sources = sources or {}
    checked = {
        name: coerce_value(name, value, hints[name], sources.get(name, where), defaults[name])
        for name, value in values.items()
    }
    return TrainConfig(**{**_defaults_for(checked), **checked})


def _defaults() -> dict[str, Any]:
    return TrainConfig().to_dict()


def _defaults_for(checked: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in _defaults().items() if name not in checked}
