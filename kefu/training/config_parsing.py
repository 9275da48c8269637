"""How YAML and `--set` text become TrainConfig values: the YAML file read, each value checked
against its field's type, and unknown keys named with the known ones closest to them (other
trainers' names for a key count as close).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from kefu.close_words import close_words, did_you_mean
from kefu.errors import ConfigError
from kefu.serving.taxonomy import HEADS

# Names other trainers give these keys, which difflib does not rate close to ours.
KEY_ALIASES = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "num_train_epochs": "epochs",
    "steps": "max_steps",
    "bs": "batch_size",
    "per_device_train_batch_size": "batch_size",
    "max_seq_length": "max_length",
    "model": "base_model",
    "model_name_or_path": "base_model",
    "warmup": "warmup_ratio",
    "fp16": "precision",
    "bf16": "precision",
}


def coerce_value(name: str, value: Any, expected: Any, where: str, default: Any = None) -> Any:
    """Accept the YAML value when it has the field's type (an int where a float is due, too).

    `default` is the field's default: a per-head mapping given for some heads keeps it for the rest.
    """
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 3e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif expected is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
    elif typing.get_origin(expected) is list:
        item_type = typing.get_args(expected)[0]
        if value is None or value == "":
            return []
        items = value if isinstance(value, list) else [value]  # one path is a list of one
        if item_type is str and all(isinstance(item, str) and item for item in items):
            return list(items)
        if item_type is float:
            return [
                coerce_value(f"{name}[{i}]", item, float, where) for i, item in enumerate(items)
            ]
    elif typing.get_origin(expected) is dict and isinstance(value, Mapping):
        unknown_heads = sorted(set(value) - set(HEADS), key=str)
        if unknown_heads:
            hint = close_hint(str(unknown_heads[0]), HEADS)
            raise ConfigError(
                f"{where}: {name} has unknown heads {unknown_heads}{hint}; heads are {list(HEADS)}"
            )
        merged = {**default, **value}
        return {head: coerce_value(f"{name}.{head}", merged[head], float, where) for head in HEADS}
    type_name = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    if typing.get_origin(expected) is list:
        type_name[expected] = (
            "a path or a list of paths"
            if typing.get_args(expected)[0] is str
            else "a list of numbers"
        )
    raise ConfigError(
        f"{where}: {name} = {value!r} is not {type_name.get(expected, 'a mapping of head to number')}"
    )


def check_known_keys(keys: Iterable[Any], known: Iterable[str], where: str) -> None:
    """Name every unknown key and the known ones closest to each: a typo is the usual cause."""
    names = sorted(known)
    unknown = sorted((key for key in keys if key not in names), key=str)
    if unknown:
        named = ", ".join(f"{key!r}{close_hint(str(key), names, KEY_ALIASES)}" for key in unknown)
        noun = "key" if len(unknown) == 1 else "keys"
        raise ConfigError(f"{where}: unknown config {noun} {named}; known keys: {', '.join(names)}")


def close_hint(word: str, known: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """' (did you mean epochs?)' when a known word is close, as for KEFU_* names."""
    suggestion = did_you_mean(close_words(word, known, aliases=aliases))
    return f" ({suggestion})" if suggestion else ""


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found from {Path.cwd()}; without --config, kefu train reads "
            "its default config (kefu/training/configs/default.yaml, installed with kefu)"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return raw
