"""`kefu score INPUT... -o OUTPUT --bundle DIR`: batch-score chat logs with a bundle.

Usage: kefu score 'logs/2024-*.jsonl' -o scored.parquet --bundle models/default --id-col msg_id
       kefu score logs.csv -o scored.csv --resume          # continue an interrupted run
       kefu score 导出.xlsx -o scored.csv --excel-csv --encoding gb18030
       kefu score logs.parquet -o scored.parquet --engine ray --ray-address auto
       kefu score chats.csv -o scored.parquet --session-col session --turn-col turn

Exit codes: 0 done; 1 an error before or during the run, or after it (outputs written) when an
input gave no usable rows or more rows than --max-reject-rate were rejected; 2 a bad option,
bundle or policy; 130 interrupted.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from kefu.cli.options import MaxRecordLines, PolicyFile, TextColumn, Variant
from kefu.serving.limits import DEFAULT_MAX_TEXT_CHARS, MAX_TEXT_CHARS_ENV


def command(
    inputs: list[str] = typer.Argument(
        ...,
        help="CSV, TSV, JSONL (optionally .gz or .zst), Parquet or xlsx files, or quoted globs.",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output file: .parquet, .csv, .jsonl or .xlsx."
    ),
    output_format: str = typer.Option(
        None, "--format", help="parquet, csv, jsonl or xlsx (default: from the -o suffix)."
    ),
    excel_csv: bool = typer.Option(
        False, "--excel-csv", help="Start CSV output with a UTF-8 BOM so Excel opens it right."
    ),
    encoding: str = typer.Option(
        None, help="Input text encoding, e.g. gb18030 (default: detected per file)."
    ),
    max_record_lines: MaxRecordLines = 5,
    max_reject_rate: float = typer.Option(
        0.2,
        min=0.0,
        max=1.0,
        help="Exit non-zero (after writing the outputs) when a larger share of rows is rejected.",
    ),
    bundle: Path = typer.Option(
        Path("models/default"), envvar="KEFU_BUNDLE", help="Model bundle directory."
    ),
    text_col: TextColumn = "text",
    id_col: str = typer.Option(None, help="Column identifying a row; copied into each reject."),
    chunk_size: int = typer.Option(2048, min=1, help="Rows per committed chunk (the resume unit)."),
    batch_size: int = typer.Option(64, min=1, help="Rows per ONNX Runtime call."),
    workers: int = typer.Option(
        os.cpu_count() or 1, min=1, help="Scoring processes (Ray: actors)."
    ),
    variant: Variant = None,
    policy: PolicyFile = None,
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted run (with none: start one, or stop if OUTPUT is written).",
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Discard an interrupted run and start over."),
    engine: str = typer.Option("local", help="local (process pool) or ray (Ray Data)."),
    ray_address: str = typer.Option(
        None,
        # the forms of kefu.serving.batch.ray_cluster.ADDRESS_FORMS (not imported: --help stays
        # fast), which a test holds equal
        help="Ray cluster to join: the head's host:port, port included (head:6379), "
        "ray://host:port (ray://head:10001), auto or local "
        "(default: RAY_ADDRESS when set, else a local Ray instance).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    session_col: str = typer.Option(
        None,
        help="Conversation id column: route each message with its conversation's context "
        "(turn, earlier intents, earlier clarifications), as the server would.",
    ),
    turn_col: str = typer.Option(
        None, help="Customer turn number (1-based) within the session; orders the turns."
    ),
    time_col: str = typer.Option(
        None, help="Message time; orders the turns when there is no turn column."
    ),
    max_text_chars: int = typer.Option(
        DEFAULT_MAX_TEXT_CHARS,
        min=1,
        envvar=MAX_TEXT_CHARS_ENV,
        help="Longer texts are rejected (text_too_long), as the server does (env KEFU_MAX_TEXT_CHARS).",
    ),
) -> None:
    """Score every row; rows that cannot be scored go to OUTPUT.rejects.jsonl with a reason."""
    from rich.console import Console

    from kefu.errors import InputError, Interrupted, RunFailed
    from kefu.serving.batch.job import ScoreJob

    console = Console(stderr=True)
    try:
        if engine not in ("local", "ray"):
            raise InputError(f"--engine must be 'local' or 'ray', got {engine!r}", field="--engine")
        job = ScoreJob(
            inputs=inputs,
            output=output,
            bundle=bundle,
            text_col=text_col,
            id_col=id_col,
            chunk_size=chunk_size,
            batch_size=batch_size,
            workers=workers,
            variant=variant,
            policy=policy,
            resume=resume,
            fresh=fresh,
            progress=progress,
            output_format=output_format,
            excel_csv=excel_csv,
            encoding=encoding,
            max_record_lines=max_record_lines,
            session_col=session_col,
            turn_col=turn_col,
            time_col=time_col,
            max_text_chars=max_text_chars,
        )
        if engine == "ray":
            from kefu.serving.batch.ray_engine import run_ray

            summary = run_ray(job, ray_address=ray_address, console=console)
        else:
            from kefu.serving.batch.local_engine import run_local

            summary = run_local(job, console=console)
    except KeyboardInterrupt:
        if engine == "ray":  # its staged chunks are removed: there is nothing to resume
            raise Interrupted("--engine ray keeps nothing; rerun the same command") from None
        raise Interrupted("committed chunks are kept; rerun with --resume to continue") from None
    for line in summary.lines():
        typer.echo(line)
    for warning in summary.warnings():
        typer.echo(f"warning: {warning}", err=True)
    failures = summary.failures(max_reject_rate)
    if failures:  # after the outputs and rejects are written: the run is kept, but it failed
        raise RunFailed("; ".join(failures))
