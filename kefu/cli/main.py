"""kefu command line: `kefu --help`.

Each subcommand lives in its own module of `kefu/cli/`, which keeps heavy imports
(torch, transformers, ray) inside the command body so `kefu serve` and `kefu --help` start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from kefu.cli import (
    base_model,
    bench,
    classify,
    data,
    evaluate,
    report,
    score,
    serve,
    train,
    tune,
)
from kefu.cli.errors import reports_errors

app = typer.Typer(
    name="kefu",
    help="Chinese customer-service triage: intent, urgency, emotion and routing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich panels print a type for flags too (`--table <bool>`),
    # as if they took a value; click's layout lists a flag by its name alone.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from kefu import __version__

        typer.echo(f"kefu {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Chinese customer-service triage: intent, urgency, emotion and routing."""


app.add_typer(data.app, name="data")
COMMANDS: dict[str, tuple[Callable[..., Any], str]] = {
    "base-model": (base_model.command, "Resolve and cache the pretrained base encoder."),
    "train": (train.command, "Fine-tune the three-head model and write a bundle."),
    "evaluate": (evaluate.command, "Evaluate a bundle on labelled files; metrics and a report."),
    "tune-escalation": (
        tune.command,
        "Choose high_urgency_negative.min_probability for a bundle on a labelled dev file.",
    ),
    "serve": (serve.command, "Serve a bundle over HTTP (POST /v1/classify)."),
    "classify": (classify.command, "Triage messages given on the command line or stdin."),
    "score": (score.command, "Batch-score CSV, TSV, JSONL, Parquet or xlsx files with a bundle."),
    "report": (report.command, "Render an HTML hotspot report from scored files."),
    "bench": (bench.command, "Measure latency, throughput and accuracy cost side by side."),
}
for name, (command, help_text) in COMMANDS.items():
    # short_help as well: click's list of commands would cut the help at 45 characters
    app.command(name, help=help_text, short_help=help_text)(reports_errors(name)(command))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
