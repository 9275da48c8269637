"""Options declared once in kefu/cli/options.py read the same in every command that takes them."""

from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from kefu.cli.main import COMMANDS, app

LOADER_OPTIONS = {
    "text_col": ("text", "Column holding the message text."),
    "intent_col": (
        "intent",
        "Column holding the intent label: an id or its Chinese name (no column: unlabelled).",
    ),
    "urgency_col": (
        "urgency",
        "Column holding the urgency label: an id or its Chinese name (no column: unlabelled).",
    ),
    "emotion_col": (
        "emotion",
        "Column holding the emotion label: an id or its Chinese name (no column: unlabelled).",
    ),
    "id_col": ("id", "Column holding the row id (without one: the line number)."),
    "max_record_lines": (5, "Reject a CSV/TSV record over more physical lines (a broken quote)."),
}


DATA_COMMANDS = ("build", "real", "validate", "split")


def options_of(*path: str) -> dict[str, typer.core.click.Parameter]:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return {param.name: param for param in command.params}


@pytest.mark.parametrize("command", ["validate", "split"])
def test_data_commands_take_the_loader_options_with_one_default_and_help(command):
    params = options_of("data", command)
    assert params["file"].required
    for name, (default, help_text) in LOADER_OPTIONS.items():
        assert params[name].opts == [f"--{name.replace('_', '-')}"]
        assert (params[name].default, params[name].help) == (default, help_text)
    assert "file_options" not in params


def test_the_loader_options_reach_the_loader(tmp_path):
    path = tmp_path / "renamed.csv"
    path.write_text('内容,类别,编号\n"发票开了吗,\n还没收到",invoice,7\n', encoding="utf-8")
    columns = ["--text-col", "内容", "--intent-col", "类别", "--id-col", "编号"]
    validate = ["data", "validate", str(path), *columns]
    rejects = tmp_path / "rejects.jsonl"

    read = CliRunner().invoke(app, validate)
    cut = CliRunner().invoke(app, [*validate, "--max-record-lines", "1", "--rejects", str(rejects)])

    assert read.exit_code == 0, read.output
    assert "1 usable rows, 0 rejected" in read.output
    assert cut.exit_code == 1, cut.output
    assert "0 usable rows, 1 rejected" in cut.output
    (reject,) = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert reject["id"] == "7"


@pytest.mark.parametrize(
    "command",
    [("data", "split", "x.csv", "--out", "o"), ("evaluate", "--data", "x.csv", "-o", "o")],
)
def test_a_shared_option_keeps_its_checks(command):
    result = CliRunner().invoke(app, [*command, "--max-record-lines", "0"])
    assert result.exit_code == 2
    assert "max-record-lines" in result.output


@pytest.mark.parametrize(
    ("path", "name", "default"),
    [
        (("classify",), "bundle", "models/default"),
        (("tune-escalation",), "bundle", "models/default"),
        (("bench",), "bundle", "models/default"),
        (("classify",), "variant", None),
        (("score",), "variant", None),
        (("classify",), "policy", None),
        (("score",), "policy", None),
        (("score",), "text_col", "text"),
        (("report",), "text_col", "text"),
        (("score",), "max_record_lines", 5),
    ],
)
def test_shared_option_types_keep_each_commands_name_and_default(path, name, default):
    param = options_of(*path)[name]
    assert param.opts == [f"--{name.replace('_', '-')}"]
    assert (str(param.default) if name == "bundle" else param.default) == default


HELP_PAGES = [(), ("data",), *((name,) for name in COMMANDS), *(("data", n) for n in DATA_COMMANDS)]


@pytest.mark.parametrize("path", HELP_PAGES, ids=" ".join)
def test_help_lists_a_flag_by_its_name_alone_and_every_command_whole(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})

    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert re.search(r"^  --help +Show this message and exit\.$", result.output, re.M)
    assert "..." not in result.output.partition("Commands:")[2]
