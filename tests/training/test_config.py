import json
from pathlib import Path

import pytest

from kefu.errors import ConfigError
from kefu.training.config import TrainConfig, build_config, load_config

DEFAULT_YAML = (
    Path(__file__).resolve().parents[2] / "kefu" / "training" / "configs" / "default.yaml"
)


def test_defaults_are_valid_and_the_default_file_loads():
    config = load_config(DEFAULT_YAML)
    assert config.base_model == "m3e-small"
    assert config.max_length == 128
    assert config.loss_weights == {"intent": 1.0, "urgency": 1.0, "emotion": 1.0}
    assert TrainConfig().target_precision["intent"] == 0.95


def test_overrides_win_over_the_file_and_parse_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\nlr: 1.0e-4\nfreeze_embeddings: true\n")
    config = load_config(path, ["epochs=2", "lr=3e-5", "loss_weights.emotion=0.5"])
    assert config.epochs == 2
    assert config.lr == 3e-5  # YAML 1.1 reads 3e-5 as a string; the float field accepts it
    assert config.freeze_embeddings is True
    assert config.loss_weights == {"intent": 1.0, "urgency": 1.0, "emotion": 0.5}


def test_a_partial_head_mapping_keeps_the_other_heads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("target_precision: {intent: 0.9}\n")
    assert load_config(path).target_precision == {"intent": 0.9, "urgency": 0.9, "emotion": 0.9}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochz=2", "unknown config key 'epochz'"),
        ("epochs=two", "epochs = 'two' is not an integer"),
        ("epochs=2.5", "epochs = 2.5 is not an integer"),
        ("epochs=0", "config epochs = 0 must be > 0"),
        ("batch_size=true", "batch_size = True is not an integer"),
        ("dropout=1.5", "config dropout = 1.5 must be in [0, 1)"),
        (
            "class_weights=heavy",
            "class_weights = 'heavy' must be one of ['none', 'sqrt', 'balanced']",
        ),
        ("precision=fp16", "precision = 'fp16' must be one of ['fp32', 'bf16', 'auto']"),
        ("freeze_embeddings=yes please", "freeze_embeddings = 'yes please' is not true/false"),
        ("loss_weights.tone=1", "unknown head 'tone'"),
        ("lr.intent=1", "config key 'lr' has no per-head values"),
        ("target_precision.intent=1.5", "target_precision = {'intent': 1.5"),
        ("epochs", "override 'epochs' is not key=value"),
        ("lr=nan", "config lr = nan must be a finite number"),
        ("head_lr=inf", "config head_lr = inf must be a finite number"),
        ("target_precision.intent=nan", "target_precision = {'intent': nan"),
        ("train_weights=[1.0, nan]", "config train_weights = [1.0, nan] must be a finite number"),
        ("head_lr=0", "config head_lr = 0.0 must be > 0"),
        ("patience=-1", "config patience = -1 must be >= 0"),
        ("dev_fraction=0", "config dev_fraction = 0.0 must be in (0, 1)"),
        ("max_length=513", "config max_length = 513 must be in [8, 512] (BERT positions)"),
        ("max_record_lines=0", "config max_record_lines = 0 must be >= 1"),
        (
            "text_normalization=0",
            "config text_normalization = 0 must be a normalisation version, 1 to",
        ),
        ("text_normalization=99", "config text_normalization = 99 must be a normalisation version"),
        ("parity_tolerance=0", "config parity_tolerance = 0.0 must be in (0, 1)"),
        (
            "data_encoding=klingon",
            "data_encoding = 'klingon' is not a known ASCII-compatible codec",
        ),
        (
            "train_data=[a.jsonl, '']",
            "train_data = ['a.jsonl', ''] is not a path or a list of paths",
        ),
        (
            "train_weights=[1.0, x]",
            "override 'train_weights=[1.0, x]': train_weights[1] = 'x' is not a number",
        ),
        (
            "loss_weights.intent=-1",
            "loss_weights = {'intent': -1.0, 'urgency': 1.0, 'emotion': 1.0} must be >= 0 per head",
        ),
    ],
)
def test_bad_keys_and_values_name_the_field_and_the_value(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [override])
    assert message in str(caught.value)


def test_a_value_of_the_wrong_type_names_where_it_came_from(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: two\nlr: 0.001\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"config file {path}: epochs = 'two'")
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["epochs=2", "lr=fast"])
    assert str(caught.value).startswith("override 'lr=fast': lr = 'fast'")


def test_values_at_the_edges_of_their_ranges_are_accepted(tmp_path):
    edges = ["max_length=512", "layer_lr_decay=1", "target_precision.intent=1", "patience=0"]
    config = load_config(None, edges)
    assert (config.max_length, config.layer_lr_decay, config.patience) == (512, 1.0, 0)
    assert load_config(None, ["max_length=8", "max_record_lines=1"]).max_length == 8
    path = tmp_path / "c.yaml"
    path.write_text("data_encoding:\n", "utf-8")  # an empty value: detect the encoding
    assert load_config(path).data_encoding == ""


def test_weights_that_would_train_nothing_are_refused():
    with pytest.raises(ConfigError) as caught:
        load_config(
            None, ["loss_weights.intent=0", "loss_weights.urgency=0", "loss_weights.emotion=0"]
        )
    assert str(caught.value) == (
        "config loss_weights = {'intent': 0.0, 'urgency': 0.0, 'emotion': 0.0} "
        "at least one head needs a weight > 0"
    )
    with pytest.raises(ConfigError) as caught:
        build_config({"train_data": ["a.jsonl", "b.jsonl"], "train_weights": [1.0, 0]})
    assert str(caught.value) == "config train_weights = [1.0, 0.0] must be > 0 per file"


def test_file_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# every value from the defaults\n")
    assert load_config(empty) == TrainConfig()
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert str(caught.value).startswith(f"config file {broken} is not valid YAML: ")
    listing = tmp_path / "list.yaml"
    listing.write_text("- epochs\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listing)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("epochs: 1\nlearning_rate: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'learning_rate' \(did you mean lr\?\)"
    ):
        load_config(unknown)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epoch=3", "override 'epoch=3': unknown config key 'epoch' (did you mean epochs?); "),
        ("lrr=1e-4", "unknown config key 'lrr' (did you mean lr?); known keys: base_model, "),
        ("los_weights.intent=1", "unknown config key 'los_weights' (did you mean loss_weights"),
        ("loss_weights.emotin=1", "unknown head 'emotin' (did you mean emotion?); heads are"),
        ("colour=red", "unknown config key 'colour'; known keys: base_model, batch_size, "),
        ("num_train_epochs=2", "unknown config key 'num_train_epochs' (did you mean epochs?)"),
        ("steps=100", "unknown config key 'steps' (did you mean max_steps?)"),
        ("bs=8", "unknown config key 'bs' (did you mean batch_size?)"),
    ],
)
def test_an_unknown_key_suggests_the_closest_known_keys(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [override])
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unknown_key_in_a_config_file_names_the_file_and_the_closest_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epoch: 3\nlr: 1.0e-4\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["epochs=2"])  # an override does not hide the file's typo
    assert str(caught.value).startswith(
        f"config file {path}: unknown config key 'epoch' (did you mean epochs?); known keys: "
    )
    path.write_text("epoch: 3\nlearning_rate: 1.0e-4\nbatchsize: 8\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)  # every unknown key at once: one fix-and-rerun, not three
    assert str(caught.value).startswith(
        f"config file {path}: unknown config keys 'batchsize' (did you mean batch_size or eval_batch_size?), "
        "'epoch' (did you mean epochs?), 'learning_rate' (did you mean lr?); known keys: "
    )
    path.write_text("target_precision: {intnt: 0.9}\n")
    with pytest.raises(ConfigError, match=r"unknown heads \['intnt'\] \(did you mean intent\?\)"):
        load_config(path)


def test_kefu_train_says_which_key_was_meant(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kefu.cli.main import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "--out", "m", "--set", "epoch=3"])
    assert result.exit_code == 2, result.output
    assert "unknown config key 'epoch' (did you mean epochs?)" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()


def test_kefu_train_outside_the_checkout_is_told_it_can_leave_config_out(tmp_path, monkeypatch):
    """`--config kefu/training/configs/default.yaml`, copied from the README into a data folder:
    the path is relative to a checkout, and kefu train reads that file without --config."""
    from typer.testing import CliRunner

    from kefu.cli.main import app
    from kefu.cli.train import DEFAULT_CONFIG

    monkeypatch.chdir(tmp_path)
    config = "kefu/training/configs/default.yaml"
    result = CliRunner().invoke(app, ["train", "--config", config, "--out", "m"])
    assert result.exit_code == 2, result.output
    assert (
        f"config file {config} not found from {tmp_path}; without --config, kefu train reads "
        f"its default config ({config}, installed with kefu)"
    ) in " ".join(result.output.split())
    assert DEFAULT_CONFIG == DEFAULT_YAML  # what kefu train reads without --config


def test_the_saved_config_reloads_to_the_same_config(tmp_path):
    config = load_config(DEFAULT_YAML, ["epochs=1", "base_model=/models/x"])
    saved = tmp_path / "training_config.json"
    saved.write_text(json.dumps(config.to_dict()))
    assert load_config(saved) == config
    assert build_config(config.to_dict()) == config


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().epochs = 3  # type: ignore[misc]


def test_training_files_take_one_path_or_a_list_and_weights_belong_to_them(tmp_path):
    assert build_config({"train_data": "a.jsonl"}).train_data == ["a.jsonl"]
    config = build_config({"train_data": ["a.jsonl", "b.jsonl"], "train_weights": [0.5, 2]})
    assert config.train_weights == [0.5, 2.0]
    with pytest.raises(ConfigError, match="train_weights .* must give one weight per train_data"):
        build_config({"train_data": ["a.jsonl"], "train_weights": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="train_data = 3 is not a path or a list of paths"):
        build_config({"train_data": 3})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("train_data: [a.jsonl, b.jsonl]\ntrain_weights: [0.5, 2.0]\n", "utf-8")
    # overriding the files drops the weights that were set for the old ones
    assert load_config(yaml_file, ["train_data=mine.jsonl"]).train_weights == []
    assert load_config(yaml_file, ["dev_data="]).dev_data == []


def test_train_weights_draw_rows_per_epoch_as_asked():
    import numpy as np

    from kefu.training.sampling import epoch_rows

    rng = np.random.default_rng(0)
    weights = np.array([2.0] * 100 + [0.5] * 1000)
    counts = np.bincount(epoch_rows(1100, weights, rng), minlength=1100)
    assert (counts[:100] == 2).all()
    assert set(counts[100:]) <= {0, 1} and 400 < counts[100:].sum() < 600
    assert (epoch_rows(5, None, rng) == np.arange(5)).all()
