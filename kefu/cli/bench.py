"""`kefu bench [--bundle DIR] [--quick]`: latency, throughput, memory and accuracy cost, side by side.

Usage: kefu bench --bundle models/default                 # full run, under 20 min on 2 cores
       kefu bench --bundle models/default --quick         # smoke run, about a minute
       kefu bench --skip server,batch_scoring --data my_labelled.jsonl

Writes benchmarks/results/<date>.json (`-quick` and/or `-partial`, when parts are skipped or
failed, in the name), prints one table, and (full runs: not quick, nothing skipped) rewrites
benchmarks/README.md, unless a part failed. It reports; it does not pass or fail (exit 0 even
when a part failed, whose error is in the table and the JSON). Exit 2 when it cannot run as
asked (no bundle, an unwritable --results-dir, an unknown --skip part), 1 when the texts cannot
be read.
"""

from __future__ import annotations

from pathlib import Path

import typer

from kefu.cli.options import DEFAULT_BUNDLE, BundleDir


def command(
    bundle: BundleDir = DEFAULT_BUNDLE,
    quick: bool = typer.Option(False, "--quick", help="Tiny sizes: a smoke run in about a minute."),
    data: Path = typer.Option(
        None, "--data", help="Labelled file of texts (default: datasets/seed/test.jsonl)."
    ),
    results_dir: Path = typer.Option(
        None, "--results-dir", help="Where <date>.json goes (default: benchmarks/results)."
    ),
    readme: bool = typer.Option(
        None,
        "--readme/--no-readme",
        help="Rewrite benchmarks/README.md (default: full runs only, nothing skipped).",
    ),
    skip: str = typer.Option(
        "",
        "--skip",
        help="Comma-separated parts to leave out: "
        "ort_raw,flops,accuracy,torch,training,server,batch_scoring.",
    ),
    threads: int = typer.Option(
        None, "--threads", min=1, help="ORT/torch threads (default: all cores)."
    ),
    score_rows: int = typer.Option(
        None,
        "--score-rows",
        min=1,
        help="Rows for batch scoring (default 100,000; 2,000 with --quick).",
    ),
) -> None:
    from kefu.bench.run import PARTS, README, RESULTS_DIR, run_bench, wide_console
    from kefu.errors import InputError

    skipped = tuple(part.strip() for part in skip.split(",") if part.strip())
    unknown = sorted(set(skipped) - set(PARTS))
    if unknown:
        raise InputError(
            f"unknown part(s) {unknown} in --skip; parts are {', '.join(PARTS)}", field="--skip"
        )
    if set(skipped) == set(PARTS):
        raise InputError("--skip names every part; nothing would run", field="--skip")
    write_readme = (not quick and not skipped) if readme is None else readme
    run_bench(
        bundle,
        quick=quick,
        data=data,
        results_dir=results_dir or RESULTS_DIR,
        readme=README if write_readme else None,
        skip=skipped,
        threads=threads,
        score_rows=score_rows,
        console=wide_console(stderr=True),
    )
