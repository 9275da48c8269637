"""`kefu evaluate`: score a bundle on labelled test sets; write metrics.json, report.md, figures.

Usage: `kefu evaluate --bundle models/default --data datasets/seed/test.jsonl -o reports/x`
       `kefu evaluate --bundle models/default --data datasets/seed/test.jsonl \
            --data real=datasets/real/test.jsonl --lead real -o models/default`
       `kefu evaluate --bundle models/mine --data my/test.jsonl --policy tuned.yaml -o reports/tuned`
(`-o models/default` writes the report under models/default/evaluation/ and updates the bundle's
metrics.json and model card). The first --data is metrics.json's top-level block; each further
set gets a block of the same shape under its name. `--policy` is read as `kefu serve --policy`
and `kefu score --policy` read it, so the escalation and conversation numbers describe the
routing a deployment serves beside the bundle (e.g. `kefu tune-escalation --write-policy`'s).
"""

from __future__ import annotations

from pathlib import Path

import typer

from kefu.cli.options import MaxRecordLines

COLUMN_HELP = (
    "Column of the test files holding the {} (default: the one the bundle was trained on, "
    "as its training config names it)."
)


def command(
    bundle: Path = typer.Option(
        Path("models/default"),
        "--bundle",
        envvar="KEFU_BUNDLE",
        help="Bundle directory to evaluate.",
    ),
    data: list[str] = typer.Option(
        ...,
        "--data",
        help="Labelled test file (JSONL, CSV, TSV, Parquet or xlsx), as FILE or NAME=FILE; repeat "
        "for several sets (a bare FILE is named after its folder).",
    ),
    lead: str = typer.Option(
        None, "--lead", help="Test set the model card leads with (default: the first)."
    ),
    policy: Path = typer.Option(
        None,
        "--policy",
        help="Routing policy YAML laid over the bundle's policy.yaml, as kefu serve and kefu "
        "score take it; the escalation and conversation blocks are routed with it.",
    ),
    min_support: int = typer.Option(
        10, "--min-support", min=1, help="Macro-F1 averages classes with at least this many rows."
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
        envvar="KEFU_PUBLIC_DEV",
        help="Public dev-set folder (env KEFU_PUBLIC_DEV; the Makefile sets it). Skipped if unset.",
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
    text_col: str = typer.Option(None, "--text-col", help=COLUMN_HELP.format("text")),
    intent_col: str = typer.Option(None, "--intent-col", help=COLUMN_HELP.format("intent")),
    urgency_col: str = typer.Option(None, "--urgency-col", help=COLUMN_HELP.format("urgency")),
    emotion_col: str = typer.Option(None, "--emotion-col", help=COLUMN_HELP.format("emotion")),
    id_col: str = typer.Option(None, "--id-col", help=COLUMN_HELP.format("id")),
    session_col: str = typer.Option(
        "session", "--session-col", help="Conversation id column (conversation view, intervals)."
    ),
    turn_col: str = typer.Option("turn", "--turn-col", help="Customer turn number column."),
    encoding: str = typer.Option(
        None, "--encoding", help="Text encoding of the data files (default: detected per file)."
    ),
    max_record_lines: MaxRecordLines = 5,
) -> None:
    import time

    from kefu.cli.extras import require_train_extra

    require_train_extra(("sklearn", "scipy"))

    from kefu.errors import InputError
    from kefu.training.evaluation.artifacts import (
        EvaluationRequest,
        parse_test_set,
        run_evaluation,
    )
    from kefu.training.evaluation.public_dev import PER_SET_DEFAULTS
    from kefu.training.evaluation.tables import fmt

    def log(message: str) -> None:
        typer.echo(message, err=True)

    if no_public_dev:
        public_folder = None
    elif public_dev is not None:
        if not public_dev.is_dir():
            raise InputError(
                f"--public-dev {public_dev} is not a directory; "
                "pass the public-dev folder or --no-public-dev",
                field="--public-dev",
            )
        public_folder = public_dev
    else:
        public_folder = None
        log("public dev sets: no --public-dev (or KEFU_PUBLIC_DEV), skipped")
    request = EvaluationRequest(
        bundle=bundle,
        data=[parse_test_set(value) for value in data],
        out=out,
        train_data=train_data,
        lead=lead,
        min_support=min_support,
        public_dev=public_folder,
        public_dev_limit=PER_SET_DEFAULTS
        if public_dev_limit is None
        else (public_dev_limit or None),
        update_bundle=update,
        threads=threads,
        policy=policy,
        session_col=session_col,
        turn_col=turn_col,
        columns={
            keyword: name
            for keyword, name in {
                "text_col": text_col,
                "intent_col": intent_col,
                "urgency_col": urgency_col,
                "emotion_col": emotion_col,
                "id_col": id_col,
            }.items()
            if name is not None
        },
        encoding=encoding,
        max_record_lines=max_record_lines,
    )
    started = time.perf_counter()
    outcome = run_evaluation(request, log=log)
    metrics = outcome.metrics
    for position, name in enumerate(metrics["test_sets"]):
        block = metrics if position == 0 else metrics[name]
        for head, scores in block["model"].items():
            if not scores["trained"]:
                log(f"{name:6s} {head:8s} not trained (too few labels or one class: see the card)")
                continue
            if not scores["n"]:
                log(f"{name:6s} {head:8s} not scored (no row carries an {head} label it knows)")
                continue
            baseline, int8 = block["baseline"][head], block["int8"][head]
            supports = [entry["support"] for entry in scores["per_class"].values()]
            present, counted = sum(n > 0 for n in supports), sum(n >= min_support for n in supports)
            if scores["macro_f1"] is None:
                undefined = (
                    f" (no class has --min-support {min_support} rows; over every class present: "
                    f"{fmt(scores['macro_f1_all'])})"
                )
            elif counted < present:  # a figure over 2 of 12 classes must not read as the head's
                undefined = (
                    f" (over the {counted} of {present} classes with --min-support {min_support} "
                    f"rows; over all: {fmt(scores['macro_f1_all'])})"
                )
            else:
                undefined = ""
            log(
                f"{name:6s} {head:8s} macro-F1 {fmt(scores['macro_f1'])} (baseline "
                f"{fmt(baseline['macro_f1'])}, INT8 {fmt(int8['macro_f1'])})  ECE "
                f"{fmt(scores['ece'])}  abstain {fmt(scores['abstain_rate'])}{undefined}"
            )
    for name, result in outcome.metrics.get("public_dev", {}).items():
        log(
            f"public {name}: accuracy {fmt(result['accuracy'])}, macro-F1 {fmt(result['macro_f1'])} (n={result['n']})"
        )
    rows = sum((metrics if i == 0 else metrics[n])["n"] for i, n in enumerate(metrics["test_sets"]))
    log(f"evaluated {rows} rows in {time.perf_counter() - started:.1f}s")
    typer.echo(str(outcome.report))
