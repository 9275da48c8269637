"""`kefu evaluate` and `kefu tune-escalation` read files with the column names the bundle was
trained on, unless told otherwise."""

import csv
import json

import pytest
from support.training import tiny_config
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.training.train import train

COLUMNS = {"id": "编号", "text": "内容", "intent": "意图", "urgency": "紧急度", "emotion": "情绪"}


def write_csv(path, rows, columns):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([columns[key] for key in COLUMNS])
        for row in rows:
            writer.writerow([row[key] or "" for key in COLUMNS])
    return path


@pytest.fixture(scope="module")
def own_export(data_dir, base_dir, tmp_path_factory):
    """A bundle trained on CSV files whose headers are a team's own (Chinese) column names."""
    folder = tmp_path_factory.mktemp("own_export")
    for name in ("train", "dev"):
        rows = [json.loads(line) for line in (data_dir / f"{name}.jsonl").read_text().splitlines()]
        write_csv(folder / f"{name}.csv", rows, COLUMNS)
    config = tiny_config(
        data_dir,
        base_dir,
        train_data=str(folder / "train.csv"),
        dev_data=str(folder / "dev.csv"),
        max_steps=2,
        int8=False,
        **{f"{key}_column": name for key, name in COLUMNS.items()},
    )
    train(config, folder / "bundle", log=lambda line: None, show_progress=False)
    return folder


def evaluate(own_export, test_file, out, *flags):
    args = ["evaluate", "--bundle", own_export / "bundle", "--data", test_file, "-o", out, *flags]
    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_test_files_of_the_same_export_need_no_column_flags(own_export, tmp_path):
    result = evaluate(own_export, own_export / "dev.csv", tmp_path / "out")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    dev_rows = len((own_export / "dev.csv").read_text("utf-8").splitlines()) - 1
    assert metrics["n"] == dev_rows and metrics["model"]["intent"]["n"] == dev_rows


def test_column_flags_override_the_training_columns(own_export, data_dir, tmp_path):
    plain = {key: key for key in COLUMNS}  # a file with the standard column names
    rows = [json.loads(line) for line in (data_dir / "dev.jsonl").read_text().splitlines()]
    test_file = write_csv(tmp_path / "plain.csv", rows, plain)

    unflagged = evaluate(own_export, test_file, tmp_path / "a")
    assert unflagged.exit_code != 0
    assert "'内容' is missing" in unflagged.output and "--text-col" in unflagged.output

    flags = [f"--{key}-col={key}" for key in COLUMNS]
    flagged = evaluate(own_export, test_file, tmp_path / "b", *flags)
    assert flagged.exit_code == 0, flagged.output
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["n"] == len(rows)


def test_tune_escalation_reads_the_dev_file_with_the_training_columns(own_export, tmp_path):
    args = ["tune-escalation", "--bundle", own_export / "bundle", "--data", own_export / "dev.csv"]
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    assert (
        "escalation by min_probability" in result.output
        and "chosen min_probability" in result.output
    )


def test_tune_escalation_column_flags_override_the_training_columns(own_export, data_dir, tmp_path):
    """A dev file with the standard names: every column, the id's too (a repeated id is one
    message labelled twice, a reject), is named by a flag."""
    rows = [json.loads(line) for line in (data_dir / "dev.jsonl").read_text().splitlines()]
    rows.append(dict(rows[0]))
    dev = write_csv(tmp_path / "plain.csv", rows, {key: key for key in COLUMNS})
    args = ["tune-escalation", "--bundle", own_export / "bundle", "--data", dev]
    args += [f"--{key}-col={key}" for key in COLUMNS]
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    assert f"rejected (not scored): {dev}, line {len(rows) + 1}, column 'id': duplicate id" in (
        result.output
    )
    assert f"escalation by min_probability ({len(rows) - 1} rows)" in result.output
