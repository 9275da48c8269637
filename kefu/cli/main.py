"""kefu command line: `kefu --help`.

Each subcommand lives in its own module under `training/commands/`, which keeps heavy imports
(torch, transformers, ray) inside the command body so `kefu serve` and `kefu --help` start fast.
"""

from __future__ import annotations

import typer

from kefu.cli import base_model, bench, data, evaluate, report, score, serve, train

app = typer.Typer(
    name="kefu",
    help="Chinese customer-service triage: intent, urgency, emotion and routing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.command("base-model", help="Resolve and cache the pretrained base encoder.")(base_model.command)
app.command("train", help="Fine-tune the three-head model and write a bundle.")(train.command)
app.command("evaluate", help="Evaluate a bundle on a labelled file; writes metrics and a report.")(
    evaluate.command
)
app.command("serve", help="Serve a bundle over HTTP (POST /v1/classify).")(serve.command)
app.command("score", help="Batch-score CSV, TSV, JSONL, Parquet or xlsx files with a bundle.")(
    score.command
)
app.command("report", help="Render an HTML hotspot report from scored files.")(report.command)
app.command("bench", help="Measure latency, throughput and accuracy cost side by side.")(
    bench.command
)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
