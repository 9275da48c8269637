"""`kefu evaluate`: score a bundle on a labelled file; write metrics.json, report.md and figures.

Usage: `kefu evaluate --bundle models/default --data datasets/seed/test.jsonl -o reports/seed-test`
(`-o models/default` writes the report under models/default/evaluation/ and updates the bundle's
metrics.json and model card).
"""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    bundle: Path = typer.Option(
        Path("models/default"), "--bundle", help="Bundle directory to evaluate."
    ),
    data: Path = typer.Option(
        ..., "--data", help="Labelled file (JSONL, CSV, TSV, Parquet or xlsx)."
    ),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Folder for metrics.json, report.md and PNGs."
    ),
    train_data: Path = typer.Option(
        None,
        "--train-data",
        help="Training split for the TF-IDF baseline (default: from the bundle's config, else train.* beside --data).",
    ),
    public_dev: Path = typer.Option(
        None,
        "--public-dev",
        help="Public dev-set folder (default ../shared/data/public-dev, skipped if absent).",
    ),
    no_public_dev: bool = typer.Option(False, "--no-public-dev", help="Skip the public dev sets."),
    public_dev_limit: int = typer.Option(
        None,
        "--public-dev-limit",
        min=0,
        help="Rows per public set (seeded sample); 0 = all. Default: all JD rows, 1000 of each other set.",
    ),
    update: bool = typer.Option(
        False, "--update-bundle", help="Write metrics.json and the model card into the bundle."
    ),
    threads: int = typer.Option(
        None, "--threads", min=1, help="ONNX Runtime threads (default all cores)."
    ),
    text_col: str = typer.Option("text", "--text-col"),
    intent_col: str = typer.Option("intent", "--intent-col"),
    urgency_col: str = typer.Option("urgency", "--urgency-col"),
    emotion_col: str = typer.Option("emotion", "--emotion-col"),
    id_col: str = typer.Option("id", "--id-col"),
    encoding: str = typer.Option(
        None, "--encoding", help="Text encoding of the data files (default: detected per file)."
    ),
    max_record_lines: int = typer.Option(
        5, "--max-record-lines", min=1, help="Reject a CSV/TSV record over more physical lines."
    ),
) -> None:
    import time

    from kefu.errors import KefuError
    from kefu.training.evaluation.artifacts import EvaluationRequest, run_evaluation
    from kefu.training.evaluation.public_dev import DEFAULT_PUBLIC_DEV, PER_SET_DEFAULTS
    from kefu.training.evaluation.report import fmt

    def log(message: str) -> None:
        typer.echo(message, err=True)

    if no_public_dev:
        public_folder = None
    elif public_dev is not None:
        if not public_dev.is_dir():
            log(
                f"error: --public-dev {public_dev} is not a directory; pass the public-dev folder or --no-public-dev"
            )
            raise typer.Exit(1)
        public_folder = public_dev
    else:
        public_folder = DEFAULT_PUBLIC_DEV if DEFAULT_PUBLIC_DEV.is_dir() else None
        if public_folder is None:
            log(f"public dev sets: {DEFAULT_PUBLIC_DEV} not found, skipped")
    request = EvaluationRequest(
        bundle=bundle,
        data=data,
        out=out,
        train_data=train_data,
        public_dev=public_folder,
        public_dev_limit=PER_SET_DEFAULTS
        if public_dev_limit is None
        else (public_dev_limit or None),
        update_bundle=update,
        threads=threads,
        columns={
            "text_col": text_col,
            "intent_col": intent_col,
            "urgency_col": urgency_col,
            "emotion_col": emotion_col,
            "id_col": id_col,
        },
        encoding=encoding,
        max_record_lines=max_record_lines,
    )
    started = time.perf_counter()
    try:
        outcome = run_evaluation(request, log=log)
    except KefuError as exc:
        log(f"error: {exc}")
        raise typer.Exit(1) from None
    for head, scores in outcome.metrics["model"].items():
        baseline, int8 = outcome.metrics["baseline"][head], outcome.metrics["int8"][head]
        log(
            f"{head:8s} macro-F1 {fmt(scores['macro_f1'])} (baseline {fmt(baseline['macro_f1'])}, "
            f"INT8 {fmt(int8['macro_f1'])})  ECE {fmt(scores['ece'])}  abstain {fmt(scores['abstain_rate'])}"
        )
    for name, result in outcome.metrics.get("public_dev", {}).items():
        log(
            f"public {name}: accuracy {fmt(result['accuracy'])}, macro-F1 {fmt(result['macro_f1'])} (n={result['n']})"
        )
    log(f"evaluated {outcome.metrics['n']} rows in {time.perf_counter() - started:.1f}s")
    typer.echo(str(outcome.report))
