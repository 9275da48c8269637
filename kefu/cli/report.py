"""`kefu report SCORED... -o report.html`: an offline HTML hotspot report from scored files.

Usage: kefu report scored.parquet -o report.html --time-col created_at --top-n 10
"""

from __future__ import annotations

from pathlib import Path

import typer

from kefu.cli.options import TextColumn


def command(
    inputs: list[str] = typer.Argument(
        ..., help="Scored Parquet, CSV, TSV, JSONL or xlsx files (or quoted globs)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write."),
    text_col: TextColumn = "text",
    time_col: str = typer.Option(
        None, help="Timestamp column: adds trends by day, week or month (see --period)."
    ),
    top_n: int = typer.Option(10, help="How many intents the TOP table lists."),
    period: str = typer.Option(
        "auto",
        help="Trend period: day, week, month or auto (weeks past 60 days, months past 2 years).",
    ),
    title: str = typer.Option("kefu hotspot report 客服热点报告", help="Report title."),
    encoding: str = typer.Option(
        None, help="Text encoding of CSV/TSV/JSONL inputs (default: detected per file)."
    ),
    max_record_lines: int = typer.Option(
        1_000,
        min=1,
        help="Reject a CSV/TSV record over more physical lines (a broken quote); scored texts "
        "keep their line breaks.",
    ),
) -> None:
    """Intent, urgency and emotion distributions, escalations, repeated questions and trends."""
    from kefu.serving.report import build_report
    from kefu.serving.report.render import left_out_reasons

    data = build_report(
        inputs,
        output,
        text_col=text_col,
        time_col=time_col,
        top_n=top_n,
        period=period,
        title=title,
        encoding=encoding,
        max_record_lines=max_record_lines,
    )
    typer.echo(
        f"report: {output} ({data.rows} messages from {len(data.files)} file(s), "
        f"escalation rate {data.escalation_rate:.1%})"
    )
    if data.rejected:
        typer.echo(
            f"{data.rejected} records left out of the report: {left_out_reasons(data)}", err=True
        )
        for reject in data.reject_examples:
            typer.echo(f"rejected: {reject.describe()}", err=True)
        typer.echo(f"every one is in {data.rejects_file}", err=True)
