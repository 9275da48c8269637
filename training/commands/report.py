"""`kefu report`: not built yet."""

from __future__ import annotations

import typer


def command() -> None:
    typer.echo("kefu report: not available yet", err=True)
    raise typer.Exit(2)
