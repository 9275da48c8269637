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
