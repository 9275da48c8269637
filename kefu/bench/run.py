"""`kefu bench` end to end: every part in one process tree, one results file, one table.

Usage: `run_bench(Path("models/default"))`, or `kefu bench --quick` for a smoke run in about
a minute. Parts run in a fixed order (cheap in-process parts first, then the ones that start
`kefu serve` and `kefu score`); each is bounded by the plan's counts and seconds, and a part
that fails is recorded with its error while the others still run: the benchmark reports, it
does not pass or fail.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from kefu.bench.machine import describe_machine, usable_cores
from kefu.bench.plan import FULL, QUICK, BenchPlan
from kefu.bench.ratios import compute_ratios
from kefu.bench.report import write_readme
from kefu.bench.table import rich_table
from kefu.bench.workload import Workload, load_workload, token_counts
from kefu.errors import BundleError, InputError
from kefu.serving.bundle.reader import Bundle, read_bundle
from kefu.serving.tokenization import TextEncoder

RESULTS_DIR = Path("benchmarks/results")  # the bench runs from the project root
README = Path("benchmarks/README.md")
PARTS = ("ort_raw", "flops", "accuracy", "torch", "training", "server", "batch_scoring")
SAMPLE_TEXTS = 4096  # distinct draws for the in-process parts and the server
TABLE_WIDTH = 150
FINISH_SECONDS = 30.0  # kept back from the budget for the table and the results file


def run_bench(
    bundle_dir: Path,
    *,
    quick: bool = False,
    data: Path | None = None,
    results_dir: Path = RESULTS_DIR,
    readme: Path | None = None,
    skip: tuple[str, ...] = (),
    threads: int | None = None,
    score_rows: int | None = None,
    console: Console | None = None,
    output: Console | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run every part not in `skip`; write `<results_dir>/<date>[-quick][-partial].json`.

    A run that skips a part is named `-partial` so that it never replaces the day's full run,
    whose file the benchmarks README links to; `readme` is rewritten only when given.

    Progress goes to `console` (stderr), the table and the file names to `output` (stdout).
    """
    console = console or Console(stderr=True)
    output = output or wide_console()
    plan = QUICK if quick else FULL
    if score_rows is not None:
        plan = replace(plan, score_rows=score_rows)
    threads = threads or usable_cores()
    bundle = read_bundle(bundle_dir)
    workload = load_workload(data)
    check_results_dir(results_dir)  # now, not after the minutes of measuring it would hold
    encoder = bundle.text_encoder()
    texts = workload.sample(SAMPLE_TEXTS, seed=0)
    variants = available_variants(bundle)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema": 1,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": quick,
        "skipped": sorted(skip),
        "plan": asdict(plan),
        "bundle": {
            "path": str(bundle_dir),
            "model_version": bundle.manifest.model_version,
            "base_model": bundle.manifest.base_model,
            "default_variant": bundle.manifest.default_variant,
            "max_length": bundle.manifest.max_length,
        },
        "machine": describe_machine(),
        "threads": threads,
        "variants": list(variants),
        "workload": workload.describe(encoder),
        "parts": {},
        "seconds": {},
    }
    work_dir = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    parts: dict[str, Callable[[], dict[str, Any]]] = {
        "ort_raw": lambda: _ort(bundle_dir, texts, plan, threads, variants),
        "flops": lambda: _flops(bundle, encoder, workload.texts, plan, results),
        "accuracy": lambda: _accuracy(bundle_dir, workload, threads, variants),
        "torch": lambda: _torch(bundle_dir, texts, plan, threads, variants),
        "training": lambda: _training(bundle_dir, workload, plan, threads),
        "server": lambda: _server(bundle_dir, texts, work_dir, plan, threads, variants),
        "batch_scoring": lambda: _scoring(
            bundle_dir,
            workload,
            work_dir,
            plan,
            plan.total_seconds - (time.perf_counter() - started),
            bundle.manifest.default_variant,
            threads,
        ),
    }
    try:
        for name in PARTS:
            if name in skip:
                continue
            console.print(f"[bold]kefu bench[/]: {name} ...")
            part_started = time.perf_counter()
            try:
                results["parts"][name] = parts[name]()
            except Exception as exc:  # a failed part is reported, the others still run
                results["parts"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                console.print(f"  [red]{name} failed[/]: {exc}")
                console.print(traceback.format_exc(limit=3), markup=False, highlight=False)
            results["seconds"][name] = round(time.perf_counter() - part_started, 1)
            console.print(f"  {name}: {results['seconds'][name]:.0f} s")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    results["failed"] = sorted(name for name, part in results["parts"].items() if "error" in part)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    results["ratios"] = compute_ratios(results, bundle.manifest.default_variant)
    path = write_results(results, results_dir)
    output.print(rich_table(results))
    output.print(f"results: {path}")
    if readme is not None and results["failed"]:  # the last complete run's summary stays
        output.print(f"{readme} left as it was: {', '.join(results['failed'])} failed")
    elif readme is not None:
        write_readme(results, path, readme)
        output.print(f"summary: {readme}")
    return results, path


def check_results_dir(results_dir: Path) -> None:
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"--results-dir {results_dir} cannot be created: {exc.strerror or exc}", "--results-dir"
        ) from None
    if not os.access(results_dir, os.W_OK):
        raise InputError(f"--results-dir {results_dir} is not writable", "--results-dir")


def wide_console(stderr: bool = False) -> Console:
    """A console that keeps the table on one line per row when piped (rich's default is 80)."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = max(console.width, TABLE_WIDTH)
    return console


def write_results(results: dict[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = (
        results["date"][:10]
        + ("-quick" if results["quick"] else "")
        + ("-partial" if results["skipped"] or results.get("failed") else "")
    )
    path = results_dir / f"{stem}.json"
    path.write_text(
        json.dumps(results, ensure_ascii=False, indent=2, default=_plain) + "\n", encoding="utf-8"
    )
    return path


def _plain(value: Any) -> Any:
    """numpy scalars and arrays to JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# Each part imports its module when it runs, so `--skip torch` never imports torch.
def available_variants(bundle: Bundle) -> tuple[str, ...]:
    """fp32, and INT8 when the bundle has it (training may leave it out: `int8: false`)."""
    present = []
    for variant in ("fp32", "int8"):
        try:
            bundle.model_path(variant)
        except BundleError:
            continue
        present.append(variant)
    return tuple(present)


def _ort(
    bundle_dir: Path, texts: list[str], plan: BenchPlan, threads: int, variants: tuple[str, ...]
) -> dict[str, Any]:
    from kefu.bench.ort_raw import bench_ort_raw

    return bench_ort_raw(
        bundle_dir, texts, variants=variants, messages_per_point=plan.ort_messages,
        seconds_per_point=plan.ort_seconds, threads=threads,
    )  # fmt: skip


def _flops(
    bundle: Bundle,
    encoder: TextEncoder,
    texts: list[str],
    plan: BenchPlan,
    results: dict[str, Any],
) -> dict[str, Any]:
    from kefu.bench.flops import efficiency, measured_peak_gflops
    from kefu.bench.reference import architecture

    peak = measured_peak_gflops(plan.matmul_size)
    ort = results["parts"].get("ort_raw", {}).get("variants", {})
    out = efficiency(architecture(bundle), token_counts(encoder, texts), peak["gflops"], ort)
    return {**out, "peak": peak}


def _accuracy(
    bundle_dir: Path, workload: Workload, threads: int, variants: tuple[str, ...]
) -> dict[str, Any]:
    from kefu.bench.accuracy import bench_accuracy

    return bench_accuracy(bundle_dir, workload.data, variants=variants, threads=threads)


def _torch(
    bundle_dir: Path, texts: list[str], plan: BenchPlan, threads: int, variants: tuple[str, ...]
) -> dict[str, Any]:
    from kefu.bench.torch_pipeline import bench_torch_pipeline

    return bench_torch_pipeline(
        bundle_dir, texts, variants=variants, messages_per_point=plan.torch_messages,
        seconds_per_point=plan.torch_seconds, threads=threads,
    )  # fmt: skip


def _training(
    bundle_dir: Path, workload: Workload, plan: BenchPlan, threads: int
) -> dict[str, Any]:
    from kefu.bench.training_speed import bench_training

    return bench_training(
        bundle_dir, workload.data, steps=plan.train_steps, threads=threads,
        max_seconds=plan.train_seconds,
    )  # fmt: skip


def _server(
    bundle_dir: Path,
    texts: list[str],
    work_dir: Path,
    plan: BenchPlan,
    threads: int,
    variants: tuple[str, ...],
) -> dict[str, Any]:
    from kefu.bench.server import bench_server

    return bench_server(
        bundle_dir, texts, work_dir, variants=variants, requests=plan.server_requests,
        batch_requests=plan.server_batch_requests, floor_requests=plan.server_floor_requests,
        more_workers=plan.server_more_workers or None, seconds_per_level=plan.server_seconds,
        warmup=plan.server_warmup, threads=threads,
        interleaved_rounds=plan.server_interleaved_rounds,
    )  # fmt: skip


def _scoring(
    bundle_dir: Path,
    workload: Workload,
    work_dir: Path,
    plan: BenchPlan,
    seconds_left: float,
    variant: str,
    threads: int,
) -> dict[str, Any]:
    from kefu.bench.batch_scoring import bench_batch_scoring

    return bench_batch_scoring(
        bundle_dir, workload.sample(plan.score_rows, seed=1), work_dir,
        engines=plan.score_engines, budget_seconds=max(60.0, seconds_left - FINISH_SECONDS),
        variant=variant, threads=threads,  # what `kefu score` runs: the bundle's default
    )  # fmt: skip
