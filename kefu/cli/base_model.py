"""`kefu base-model [SOURCE]`: resolve, verify and cache the base encoder; print its directory.

Usage: `kefu base-model` (the default m3e-small), `kefu base-model path/to/dir`, or
`kefu base-model owner/name` (a Hugging Face hub id, when a hub is reachable).
"""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    source: str = typer.Argument(
        None, help="A model directory, a hub id, or m3e-small (the default).", show_default=False
    ),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Cache root (default $KEFU_CACHE or ~/.cache/kefu)."
    ),
) -> None:
    import time

    from kefu.cli.extras import require_train_extra
    from kefu.training.base_model import resolve_base_model

    require_train_extra(("torch", "safetensors", "transformers"))  # before any download

    started = time.perf_counter()
    resolved = resolve_base_model(
        source, cache_root=cache_dir, log=lambda message: typer.echo(message, err=True)
    )
    typer.echo(
        f"base model {resolved.name} ({resolved.origin}, {time.perf_counter() - started:.1f}s)",
        err=True,
    )
    typer.echo(f"licence: {resolved.licence}", err=True)
    typer.echo(str(resolved.path))
