"""`kefu train`: fine-tune the three-head model on labelled data and write a bundle.

Usage: `kefu train --config kefu/training/configs/default.yaml --out models/default
[--data-dir datasets/seed] [--base-model DIR] [--encoding gb18030] [--set epochs=2]`.
"""

from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "default.yaml"


def command(
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
    config: Path = typer.Option(
        DEFAULT_CONFIG,
        "--config",
        "-c",
        help="YAML training config (default: kefu/training/configs/default.yaml, installed "
        "with kefu).",
        show_default=False,
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY=VALUE",
        help="Override a config key: --set epochs=2 --set loss_weights.emotion=0.5",
    ),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Folder with train.jsonl and dev.jsonl (sets train_data/dev_data)."
    ),
    base_model: str = typer.Option(
        None, "--base-model", help="Base encoder: a directory, a hub id or m3e-small."
    ),
    encoding: str = typer.Option(
        None,
        "--encoding",
        help="Text encoding of the data files, e.g. gb18030 (sets data_encoding; default: detected).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    from kefu.cli.extras import require_train_extra
    from kefu.errors import DataError
    from kefu.serving.bundle.writer import check_bundle_target
    from kefu.training.config import load_config

    require_train_extra()

    settings = list(overrides)
    if data_dir is not None:
        settings += [f"train_data={data_dir / 'train.jsonl'}", f"dev_data={data_dir / 'dev.jsonl'}"]
    if base_model is not None:
        settings.append(f"base_model={base_model}")
    if encoding is not None:
        settings.append(f"data_encoding={encoding}")
    train_config = load_config(config, settings)
    check_bundle_target(out)
    for key in ("train_data", "dev_data"):
        missing = [name for name in getattr(train_config, key) if not Path(name).is_file()]
        if missing:  # before the base model loads; the default config's paths are relative
            raise DataError(
                f"config {key} names {missing[0]}, not found from {Path.cwd()}: run from the "
                "project root, or pass --data-dir DIR (train.jsonl and dev.jsonl) or "
                "--set train_data=FILE --set dev_data=FILE",
                file=missing[0],
            )
    _quiet_libraries()
    from kefu.training.train import train

    train(train_config, out, log=lambda line: typer.echo(line, err=True), show_progress=not quiet)
    typer.echo(str(out))


def _quiet_libraries() -> None:
    """transformers' load report and torch's exporter chatter would bury kefu's own log."""
    import warnings

    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
