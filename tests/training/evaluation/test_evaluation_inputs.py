"""What `kefu evaluate` refuses before it reads a row: test-set options, missing files, a report
folder that is a file, and where it finds the baseline's training split."""

import pytest
from support.evaluation import run_cli

from kefu.errors import DataError
from kefu.training.evaluation.artifacts import resolve_train_data


def test_train_split_is_found_beside_the_data_or_asked_for(evaluation_data, tmp_path):
    assert resolve_train_data(None, evaluation_data / "test.jsonl", {}) == [
        (evaluation_data / "train.jsonl", 1.0)
    ]
    config = {"train_data": [str(evaluation_data / "train.jsonl")] * 2, "train_weights": [0.5, 2.0]}
    assert resolve_train_data(None, evaluation_data / "test.jsonl", config) == [
        (evaluation_data / "train.jsonl", 0.5),
        (evaluation_data / "train.jsonl", 2.0),
    ]
    lonely = tmp_path / "test.jsonl"
    lonely.write_text("", "utf-8")
    with pytest.raises(DataError, match="pass --train-data FILE"):
        resolve_train_data(None, lonely, {})
    with pytest.raises(DataError, match="names elsewhere/train.jsonl, not found from"):
        resolve_train_data(None, lonely, {"train_data": ["elsewhere/train.jsonl"]})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lead", "reel"], "--lead 'reel' names no test set; the sets are ['seed', 'real']"),
        (["--data", "seed=x.jsonl"], "two test sets are named alike (['seed', 'real', 'seed'])"),
    ],
)
def test_bad_test_set_options_exit_2(tiny_bundle, evaluation_data, tmp_path, extra, message):
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"seed={evaluation_data / 'test.jsonl'}", "-o", tmp_path,
        "--data", f"real={evaluation_data / 'real' / 'test.jsonl'}", *extra,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_bad_test_set_options_leave_no_report_folder(tiny_bundle, evaluation_data, tmp_path):
    out = tmp_path / "report"
    result = run_cli(
        "--bundle", tiny_bundle, "--data", evaluation_data / "test.jsonl", "-o", out, "--lead", "reel"
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        (["--data", "real={missing}"], "missing.jsonl"),  # the last of several test sets
        (["--train-data", "{missing}"], "missing.jsonl"),  # the baseline's training split
    ],
    ids=["test-set", "train-data"],
)
def test_a_missing_file_stops_evaluation_before_any_file_is_read(
    tiny_bundle, evaluation_data, tmp_path, monkeypatch, extra, missing
):
    read = []
    monkeypatch.setattr(
        "kefu.training.evaluation.artifacts.load_labelled",
        lambda path, **_: read.append(path),
    )
    missing_path = tmp_path / missing
    result = run_cli(
        "--bundle", tiny_bundle, "--data", f"seed={evaluation_data / 'test.jsonl'}", "-o",
        tmp_path / "out", *(arg.format(missing=missing_path) for arg in extra),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"kefu evaluate: file {missing_path}: input file does not exist" in result.output
    assert read == []  # not one test or training file was read before the error
    assert not (tmp_path / "out").exists()


def test_a_report_folder_that_is_a_file_is_refused(tiny_bundle, evaluation_data, tmp_path):
    taken = tmp_path / "report"
    taken.write_text("mine", "utf-8")
    result = run_cli("--bundle", tiny_bundle, "--data", evaluation_data / "test.jsonl", "-o", taken)
    assert result.exit_code == 2, result.output
    assert f"-o {taken} is a file; give a folder for the report" in result.output
    assert taken.read_text("utf-8") == "mine"


def test_missing_data_file_is_a_clear_error(tiny_bundle, tmp_path):
    result = run_cli(
        "--bundle", tiny_bundle, "--data", tmp_path / "nope.jsonl", "-o", tmp_path / "out"
    )
    assert result.exit_code == 1
    assert (
        f"kefu evaluate: file {tmp_path / 'nope.jsonl'}: input file does not exist" in result.output
    )
