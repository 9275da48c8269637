"""Batch scoring: `kefu score` on 100,000 messages, rows/s and peak memory of its process tree.

The input file repeats the test split's texts (sampled with replacement, so the length mix is
the split's). `kefu score` runs as a child process exactly as a user runs it, with its default
workers and batch size; the clock runs from launch to exit (start-up and model loading
included) and the process tree's memory is polled from /proc every 0.2 s. The local engine
always runs; the Ray engine when `ray` is importable. The part has a time budget (`kefu bench`
must finish in 20 minutes on 2 cores): on a machine too slow or too busy for 100,000 rows, an
engine scores fewer rows and says so. A run that still overruns is stopped (its whole process
group) and reported as such.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kefu.bench.ort_raw import reference_point
from kefu.bench.proctree import PeakMemory
from kefu.bench.timing import Deadline

SUMMARY_ROWS = re.compile(r"rows read (\d+) = scored (\d+) \+ rejected (\d+)")
SUMMARY_RATE = re.compile(r"(\d+) rows in ([\d.]+) s")
# Progress line the local engine logs every 10 s when its output is not a terminal.
PROGRESS = re.compile(r"scoring: (\d+)(?:/~\d+)? rows, ([\d,]+) rows/s")
TAIL_CHARS = 2000
STARTUP_SECONDS = 30.0  # process start, model load (and Ray start-up) before rows flow
SAFETY = 0.85  # plan rows for 85% of the expected rate
MIN_ROWS = 1000
REFERENCE_TEXTS = 4096  # texts for the raw ORT reference measured before each engine
GRACE_SECONDS = 60.0  # a run is stopped this long after its share of the budget
# Ray's rate planned as this share of the local engine's (its scheduler and object store cost).
RAY_SPEED = 0.7


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def write_input(texts: list[str], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index, text in enumerate(texts):
            handle.write(
                json.dumps({"id": f"b{index:06d}", "text": text}, ensure_ascii=False) + "\n"
            )
    return path


def score_command(input_path: Path, output: Path, bundle_dir: Path, engine: str) -> list[str]:
    return [
        sys.executable, "-m", "kefu.cli.main", "score", str(input_path),
        "-o", str(output), "--bundle", str(bundle_dir), "--id-col", "id",
        "--engine", engine,
    ]  # fmt: skip


def run_score(
    input_path: Path, rows: int, bundle_dir: Path, work_dir: Path, engine: str, max_seconds: float
) -> dict[str, Any]:
    """One `kefu score` run: wall-clock rows/s, the engine's own rate, peak RSS/PSS."""
    output = work_dir / f"scored-{engine}.parquet"
    log_path = work_dir / f"score-{engine}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log_path.open("w", encoding="utf-8") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            score_command(input_path, output, bundle_dir, engine),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        with PeakMemory(process.pid) as memory:
            try:
                returncode = process.wait(timeout=max_seconds)
            except subprocess.TimeoutExpired:
                stop_group(process)
                returncode = None
            except (
                BaseException
            ):  # Ctrl-C or an error here: the run (and its Ray) must not outlive us
                stop_group(process)
                raise
        seconds = time.perf_counter() - started
    text = log_path.read_text(encoding="utf-8", errors="replace")
    result: dict[str, Any] = {
        "engine": engine,
        "rows": rows,
        "seconds": seconds,
        **memory.as_dict(),
    }
    if returncode != 0:
        why = (
            f"stopped after {max_seconds:.0f}s" if returncode is None else f"exit code {returncode}"
        )
        result["error"] = f"kefu score {why}; log tail: {text[-TAIL_CHARS:]}"
        return result
    result["rows_per_s"] = rows / seconds
    counts = SUMMARY_ROWS.search(text)
    if counts:
        result["scored"], result["rejected"] = int(counts.group(2)), int(counts.group(3))
    rate = SUMMARY_RATE.search(text)
    if rate and float(rate.group(2)) > 0:
        result["engine_rows_per_s"] = int(rate.group(1)) / float(rate.group(2))
    return result


def last_progress(log_text: str) -> tuple[int, float] | None:
    """(rows done, rows/s) from the last progress line of a `kefu score` log, if any."""
    lines = PROGRESS.findall(log_text)
    if not lines:
        return None
    done, rate = lines[-1]
    return int(done), float(rate.replace(",", ""))


def stop_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def rows_that_fit(rows: int, seconds: float, rows_per_s: float | None) -> int:
    """`rows`, or fewer (whole thousands) when the expected rate would not finish in `seconds`."""
    if rows_per_s is None:
        return rows
    fit = int((seconds - STARTUP_SECONDS) * rows_per_s * SAFETY) // 1000 * 1000
    return max(min(rows, fit), min(rows, MIN_ROWS))


def bench_batch_scoring(
    bundle_dir: Path,
    texts: list[str],
    work_dir: Path,
    *,
    engines: tuple[str, ...] = ("local", "ray"),
    budget_seconds: float = 900.0,
    variant: str = "int8",
    threads: int | None = None,
) -> dict[str, Any]:
    """{"rows": n, "engines": {engine: run result or {"skipped": why}}}.

    `variant` is the one `kefu score` uses (the bundle's default); raw ORT is timed with it
    right before each engine runs, as the reference for that engine's ratio.

    The remaining budget is shared out between the engines still to run. The local engine
    always gets every row: if it runs out of time it is stopped and its last progress line
    gives the rate (`stopped_after_rows`). Ray logs no progress, so when the local engine's
    rate says `len(texts)` rows would not finish in Ray's share, Ray scores the first N rows
    instead, and its result says so (`reduced_from`).
    """
    deadline = Deadline(budget_seconds)
    results: dict[str, Any] = {"rows": len(texts), "budget_seconds": budget_seconds, "engines": {}}
    runnable = [engine for engine in engines if engine != "ray" or ray_available()]
    if "ray" in engines and "ray" not in runnable:
        results["engines"]["ray"] = {"skipped": "ray is not installed (pip install '.[ray]')"}
    guess: float | None = None  # rows/s measured by the previous engine
    for index, engine in enumerate(runnable):
        share = deadline.remaining / (len(runnable) - index)
        expected = None if guess is None or engine == "local" else guess * RAY_SPEED
        rows = rows_that_fit(len(texts), share, expected)
        input_path = work_dir / f"score-input-{rows}.jsonl"
        if not input_path.exists():
            write_input(texts[:rows], input_path)
        reference = reference_point(bundle_dir, variant, texts[:REFERENCE_TEXTS], threads)
        run = run_score(input_path, rows, bundle_dir, work_dir, engine, share + GRACE_SECONDS)
        run["raw_ort_just_before"] = reference
        if rows < len(texts):
            run["reduced_from"] = len(texts)
            run["reduced_because"] = (
                f"{len(texts):,} rows at an expected {expected:,.0f} rows/s would not finish in "
                f"this engine's {share:.0f} s share of the time budget"
            )
        results["engines"][engine] = run
        guess = run.get("engine_rows_per_s") or run.get("rows_per_s") or guess
    return results
