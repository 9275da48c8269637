"""One error model: every kefu error carries its HTTP status and exit code, one wrapper prints it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

import kefu.errors as errors
from kefu.cli.errors import reports_errors


def every_error_class() -> list[type[errors.KefuError]]:
    found, todo = [], [errors.KefuError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", every_error_class(), ids=lambda cls: cls.__name__)
def test_every_error_says_its_status_and_exit_code(cls):
    assert 400 <= cls.http_status < 500 or cls.http_status == 503
    assert cls.exit_code in (errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_INTERRUPTED)
    assert cls.code and cls.code == cls.code.lower()


@pytest.mark.parametrize(
    ("cls", "http_status", "exit_code"),
    [
        (errors.Unauthorized, 401, 1),
        (errors.Forbidden, 403, 1),
        (errors.RequestTimeout, 408, 1),
        (errors.Conflict, 409, 1),
        (errors.PayloadTooLarge, 413, 2),
        (errors.HeadTooLarge, 431, 1),
        (errors.UnsupportedMediaType, 415, 1),
        (errors.InputError, 422, 2),
        (errors.BundleError, 422, 2),
        (errors.PolicyError, 422, 2),
        (errors.ConfigError, 422, 2),
        (errors.DataError, 422, 1),
        (errors.RunFailed, 422, 1),
        (errors.Overloaded, 503, 1),
        (errors.Interrupted, 503, 130),
    ],
)
def test_each_error_types_status_and_exit_code(cls, http_status, exit_code):
    assert (cls.http_status, cls.exit_code) == (http_status, exit_code)


def test_a_data_error_names_file_line_and_column_and_interrupted_what_was_kept():
    where = errors.DataError("not a label", file="a.csv", line=3, column="intent")
    assert str(where) == "file a.csv, line 3, column 'intent': not a label"
    assert str(errors.DataError("empty", line=0, unit="element")) == "element 0: empty"
    assert str(errors.Interrupted("chunks kept")) == "interrupted: chunks kept"


def test_one_line_keeps_a_tracebacks_last_line_and_otherwise_the_first():
    traced = RuntimeError("Traceback (most recent call last):\n  File x\nValueError: bad")
    assert errors.one_line(traced) == "RuntimeError: ValueError: bad"
    assert errors.one_line(OSError("disk full\nmore")) == "OSError: disk full"
    assert errors.one_line(KeyError()) == "KeyError"


@pytest.mark.parametrize(
    ("error", "exit_code"),
    [
        (errors.DataError("no usable rows", file="a.csv", line=3), 1),
        (errors.BundleError("bundle directory x does not exist"), 2),
        (errors.InputError("--engine must be 'local' or 'ray'", field="--engine"), 2),
        (errors.ConfigError("config epochs = 0 must be > 0"), 2),
        (errors.Interrupted("committed chunks are kept"), 130),
    ],
)
def test_the_cli_wrapper_prints_one_line_and_the_errors_exit_code(error, exit_code):
    app = typer.Typer()

    @app.command()
    @reports_errors("demo")
    def demo(name: str = typer.Option("x")) -> None:
        raise error

    result = CliRunner().invoke(app, ["--name", "y"])
    assert result.exit_code == exit_code
    assert result.output == f"kefu demo: {error}\n"


def test_ctrl_c_is_one_line_and_exit_130():
    app = typer.Typer()

    @app.command()
    @reports_errors("demo")
    def demo(name: str = typer.Option("x")) -> None:
        raise KeyboardInterrupt

    result = CliRunner().invoke(app, ["--name", "y"])
    assert (result.exit_code, result.output) == (130, "kefu demo: interrupted\n")


def test_an_unexpected_exception_is_not_swallowed():
    @reports_errors("demo")
    def broken() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        broken()


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "kefu.cli.main", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, f"kefu {version('kefu')}\n")


def test_kefu_alone_lists_the_commands_rather_than_asking_for_one():
    from kefu.cli.main import COMMANDS, app

    result = CliRunner().invoke(app, [])
    assert "Missing command" not in result.output
    assert all(f" {name} " in result.output for name in COMMANDS), result.output


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--out", "m"],
        ["evaluate", "--data", "t.jsonl", "-o", "e"],
        ["tune-escalation", "--data", "d.jsonl"],
        ["base-model"],
        ["data", "real"],
    ],
)
def test_training_commands_in_a_serving_install_name_the_extra(monkeypatch, tmp_path, args):
    import importlib.util

    from typer.testing import CliRunner

    from kefu.cli.main import app

    real_find_spec = importlib.util.find_spec
    absent = {"torch", "transformers", "sklearn", "scipy"}
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in absent else real_find_spec(name, *a),
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert (
        "needs the training extra" in result.output and "pip install -e '.[train]'" in result.output
    )
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "build"], "no datasets/sources here"),
        (["data", "real"], "no datasets/real/messages.tsv here"),
        (["train", "--out", "m"], "config train_data names datasets/seed/train.jsonl, not found"),
    ],
)
def test_project_commands_outside_the_checkout_say_where_to_run(
    monkeypatch, tmp_path, args, message
):
    from typer.testing import CliRunner

    from kefu.cli.main import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (1, 2) and message in result.output, result.output
    assert "Traceback" not in result.output


# every command with a --bundle option but kefu serve (which reads KEFU_BUNDLE itself)
BUNDLE_COMMANDS = [
    ["score", "log.jsonl", "-o", "out.parquet", "--no-progress"],
    ["evaluate", "--data", "test.jsonl", "-o", "report", "--no-public-dev"],
    ["tune-escalation", "--data", "dev.jsonl"],
    ["bench", "--quick", "--results-dir", "results"],
    ["classify", "在吗"],
]


def bundle_error(monkeypatch, tmp_path, args: list[str]) -> str:
    """What `kefu ARGS` says in `tmp_path`, where no bundle exists."""
    from typer.testing import CliRunner

    from kefu.cli.main import app

    monkeypatch.chdir(tmp_path)
    for name in ("log.jsonl", "test.jsonl", "dev.jsonl"):
        (tmp_path / name).write_text(
            '{"text": "在吗", "intent": "greeting", "urgency": "low", "emotion": "neutral"}\n',
            encoding="utf-8",
        )
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.mark.parametrize("args", BUNDLE_COMMANDS)
def test_every_bundle_option_defaults_to_kefu_bundle(monkeypatch, tmp_path, args):
    """KEFU_BUNDLE names the bundle wherever --bundle is left out, as the error says."""
    missing = tmp_path / "bundles" / "v7"
    monkeypatch.setenv("KEFU_BUNDLE", str(missing))
    said = bundle_error(monkeypatch, tmp_path, args)
    assert f"bundle directory {missing} does not exist" in said, said
    assert "(or KEFU_BUNDLE)" in said


@pytest.mark.parametrize("args", BUNDLE_COMMANDS)
def test_bundle_wins_over_kefu_bundle_and_models_default_is_the_last_resort(
    monkeypatch, tmp_path, args
):
    monkeypatch.setenv("KEFU_BUNDLE", str(tmp_path / "from-env"))
    said = bundle_error(monkeypatch, tmp_path, [*args, "--bundle", str(tmp_path / "given")])
    assert f"bundle directory {tmp_path / 'given'} does not exist" in said, said
    monkeypatch.delenv("KEFU_BUNDLE")
    said = bundle_error(monkeypatch, tmp_path, args)
    assert "bundle directory models/default does not exist" in said, said
