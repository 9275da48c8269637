"""`kefu data build` / `kefu data validate FILE`: not built yet."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Build the seed corpus or validate a labelled file.")


@app.command("build")
def build() -> None:
    """Rebuild datasets/seed/ from datasets/sources/ (byte-identical for the same sources)."""
    typer.echo("kefu data build: not available yet", err=True)
    raise typer.Exit(2)
