"""The checks a TrainConfig runs on itself when it is built: every number finite and in range,
every choice known, one value per head. A bad value raises ConfigError naming the field and the
value, whether it came from the defaults, a YAML file or a `--set` override.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from kefu.errors import ConfigError
from kefu.serving.normalize import NORMALIZATION_VERSION
from kefu.serving.taxonomy import HEADS
from kefu.tabular.decoding import check_encoding

if TYPE_CHECKING:
    from kefu.training.config import TrainConfig

CLASS_WEIGHTS = ("none", "sqrt", "balanced")
PRECISIONS = ("fp32", "bf16", "auto")
PER_HEAD_KEYS = ("loss_weights", "target_precision", "max_abstain_rate")


def check_config(config: TrainConfig) -> None:
    """Raise ConfigError for the first bad value, in the order the groups below are checked."""
    _check_finite(config)
    _check_ranges(config)
    _check_choices(config)
    _check_data(config)
    _check_per_head(config)


def _check_finite(config: TrainConfig) -> None:
    """NaN passes every range check below (each comparison is false) and trains a model of
    NaNs; infinity is no learning rate or weight either."""
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if isinstance(value, dict):
            numbers = list(value.values())
        else:
            numbers = value if isinstance(value, list) else [value]
        if any(isinstance(number, float) and not math.isfinite(number) for number in numbers):
            _bad(spec.name, value, "must be a finite number")


def _check_ranges(config: TrainConfig) -> None:
    positive = ("epochs", "batch_size", "eval_batch_size", "lr", "head_lr", "bucket_batches")
    for name in positive:
        if getattr(config, name) <= 0:
            _bad(name, getattr(config, name), "must be > 0")
    non_negative: tuple[str, ...] = (
        "max_steps",
        "weight_decay",
        "max_grad_norm",
        "eval_every",
        "patience",
    )
    non_negative += ("time_budget_minutes", "int8_max_drop", "threads", "label_smoothing")
    for name in non_negative:
        if getattr(config, name) < 0:
            _bad(name, getattr(config, name), "must be >= 0")
    for name in ("dropout", "warmup_ratio", "label_smoothing", "ema_decay", "lexical_weight"):
        if not 0 <= getattr(config, name) < 1:
            _bad(name, getattr(config, name), "must be in [0, 1)")
    if not 0 < config.dev_fraction < 1:
        _bad("dev_fraction", config.dev_fraction, "must be in (0, 1)")
    if not 0 < config.layer_lr_decay <= 1:
        _bad("layer_lr_decay", config.layer_lr_decay, "must be in (0, 1]")
    if not 8 <= config.max_length <= 512:
        _bad("max_length", config.max_length, "must be in [8, 512] (BERT positions)")
    if not 1 <= config.text_normalization <= NORMALIZATION_VERSION:
        _bad(
            "text_normalization",
            config.text_normalization,
            f"must be a normalisation version, 1 to {NORMALIZATION_VERSION}",
        )
    if config.max_record_lines < 1:
        _bad("max_record_lines", config.max_record_lines, "must be >= 1")
    if not 0 < config.parity_tolerance < 1:
        _bad("parity_tolerance", config.parity_tolerance, "must be in (0, 1)")


def _check_choices(config: TrainConfig) -> None:
    if config.precision not in PRECISIONS:
        _bad("precision", config.precision, f"must be one of {list(PRECISIONS)}")
    if config.class_weights not in CLASS_WEIGHTS:
        _bad("class_weights", config.class_weights, f"must be one of {list(CLASS_WEIGHTS)}")


def _check_data(config: TrainConfig) -> None:
    if not config.train_data:
        _bad("train_data", config.train_data, "must name a labelled file")
    if config.train_weights and len(config.train_weights) != len(config.train_data):
        _bad("train_weights", config.train_weights, "must give one weight per train_data file")
    if any(weight <= 0 for weight in config.train_weights):
        _bad("train_weights", config.train_weights, "must be > 0 per file")
    if config.data_encoding:
        try:
            check_encoding(config.data_encoding)
        except ConfigError:
            _bad("data_encoding", config.data_encoding, "is not a known ASCII-compatible codec")


def _check_per_head(config: TrainConfig) -> None:
    for name in PER_HEAD_KEYS:
        values = getattr(config, name)
        if set(values) != set(HEADS):
            _bad(name, values, f"must give exactly the heads {list(HEADS)}")
        if any(value < 0 for value in values.values()):
            _bad(name, values, "must be >= 0 per head")
    if not any(config.loss_weights.values()):
        _bad("loss_weights", config.loss_weights, "at least one head needs a weight > 0")
    for name in ("target_precision", "max_abstain_rate"):
        if any(value > 1 for value in getattr(config, name).values()):
            _bad(name, getattr(config, name), "must be <= 1 per head")


def _bad(name: str, value: Any, why: str) -> None:
    raise ConfigError(f"config {name} = {value!r} {why}")
