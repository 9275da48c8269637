"""The HTTP server under load: a real `kefu serve` process on a free localhost port.

For each variant (INT8 and fp32, chosen with `KEFU_VARIANT`) raw ORT is timed briefly (the
reference for this variant's ratios, taken under the same machine load), then the server is
started, polled on /readyz and loaded by `server_load` (a separate process) at each level:
single-message requests at c=1, 8 and 32, 8-message requests at c=8 and 32, and GET /healthz at
c=32 (the framework's own floor); then raw ORT and the server take turns for a few rounds
(`interleaved.py`: the headline ratios from figures taken seconds apart); then it is offered
twice the message rate it served at c=32 by `server_overload` (open loop, 8-message requests,
callers that give up after 5 s) and stopped. The overload figure is the share of the c=32
message rate still served under that load, and how fast the refused requests got their 503.
Last, `kefu serve --workers 2` takes the c=32 load, to compare one worker with two. Server
output goes to a log file whose tail is quoted when start-up fails.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from kefu.bench.interleaved import interleaved_ratios
from kefu.bench.ort_raw import raw_reference
from kefu.bench.proctree import tree_cpu_seconds, tree_memory
from kefu.bench.server_process import LOG_TAIL_CHARS, ServerStartError, running_server
from kefu.serving.classifier import Classifier

CLASSIFY_PATH = "/v1/classify"
CONCURRENCIES = (1, 8, 32)
BATCH_MESSAGES = 8  # messages per request in the `c<n>_batch8` levels
OVERLOAD_FACTOR = 2.0
# Messages per overload request: as in the probe that found the problem (c=256, 8 messages), and
# it keeps the load generator's own CPU, which shares the machine, to an eighth.
OVERLOAD_MESSAGES = 8
REFERENCE_SECONDS = 6.0  # the raw ORT reference taken before the server starts


def child_json(command: list[str], timeout: float, what: str) -> dict[str, Any]:
    """Run a bench child process; its last stdout line is its JSON result."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-LOG_TAIL_CHARS:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_load_generator(
    url: str,
    texts_file: Path,
    concurrency: int,
    requests: int,
    max_seconds: float,
    warmup: int,
    messages: int = 1,
    path: str = CLASSIFY_PATH,
) -> dict[str, Any]:
    """`server_load` in a child process; its JSON line is the result."""
    command = [
        sys.executable, "-m", "kefu.bench.server_load", "--url", url,
        "--texts", str(texts_file), "--concurrency", str(concurrency),
        "--requests", str(requests), "--max-seconds", str(max_seconds), "--warmup", str(warmup),
        "--messages", str(messages), "--path", path,
    ]  # fmt: skip
    return child_json(command, max_seconds + 120, "load generator")


def measured_overload(
    url: str, texts_file: Path, c32: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """`server_overload` at OVERLOAD_FACTOR x the c=32 message rate, in a child process."""
    c32_msgs = c32["throughput_rps"]  # the load generator sends one message per request
    rate = OVERLOAD_FACTOR * c32_msgs / OVERLOAD_MESSAGES
    command = [
        sys.executable, "-m", "kefu.bench.server_overload", "--url", url,
        "--texts", str(texts_file), "--rate", f"{rate:.3f}", "--seconds", str(seconds),
        "--messages", str(OVERLOAD_MESSAGES),
    ]  # fmt: skip
    result = child_json(command, seconds + 120, "overload probe")
    result["c32_msgs_per_s"] = c32_msgs
    result["served_over_c32"] = result["served_msgs_per_s"] / c32_msgs if c32_msgs else None
    return result


def measured_level(
    pid: int,
    url: str,
    texts_file: Path,
    concurrency: int,
    requests: int,
    seconds: float,
    warmup: int,
    messages: int = 1,
    path: str = CLASSIFY_PATH,
) -> dict[str, Any]:
    """One load level plus the server's CPU per request (the generator reports its own).

    On a 2-core machine the load generator competes with the server for the same cores; the
    two CPU costs per request say how much of the server's shortfall is the client's. The
    server's count includes the warm-up requests, so they are counted as served too. The
    server's CPU covers every process and thread of its tree: event loop, inference thread,
    ORT's threads, log thread (and every worker under `--workers 2`).
    """
    server_before = tree_cpu_seconds(pid)
    level = run_load_generator(
        url, texts_file, concurrency, requests, seconds, warmup, messages, path
    )
    served = level["requests"] + warmup
    server_cpu = tree_cpu_seconds(pid) - server_before
    level["server_cpu_ms_per_request"] = 1000 * server_cpu / served if served else None
    level["server_cpu_ms_per_message"] = (
        1000 * server_cpu / (served * messages) if served and path == CLASSIFY_PATH else None
    )
    return level


def bench_server(
    bundle_dir: Path,
    texts: list[str],
    work_dir: Path,
    *,
    variants: tuple[str, ...] = ("int8", "fp32"),
    concurrencies: tuple[int, ...] = CONCURRENCIES,
    requests: dict[int, int] | None = None,
    batch_requests: dict[int, int] | None = None,
    floor_requests: int | None = None,
    more_workers: int | None = None,
    seconds_per_level: float = 30.0,
    warmup: int = 20,
    threads: int | None = None,
    interleaved_rounds: int = 0,
) -> dict[str, Any]:
    """{"variants": {variant: {"c<n>": load result, "server_rss_mb": ...}}}; errors per variant.

    Levels per variant: `c<n>` single-message requests at each concurrency; `c<n>_batch8`
    requests of BATCH_MESSAGES messages at the concurrencies of `batch_requests`;
    `healthz_c32` the same load on GET /healthz (what FastAPI and uvicorn cost on their own);
    `interleaved`: `interleaved_rounds` rounds of raw ORT then server (c=1, and c=32 with
    8-message requests), the ratios' median (`interleaved.py`); `overload_2x`; and, with
    `more_workers`, `workers<n>_c32`: c=32 single-message requests
    to `kefu serve --workers n` (the cores shared out between the workers).
    """
    requests = requests or {1: 300, 8: 1000, 32: 2000}
    texts_file = work_dir / "server_texts.json"
    texts_file.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    results: dict[str, Any] = {"variants": {}, "threads": threads}
    for variant in variants:
        log_path = work_dir / f"serve-{variant}.log"
        # one raw session per variant: the reference before the levels, and the rounds after
        classifier = Classifier.from_bundle(bundle_dir, variant=variant, intra_op_threads=threads)
        reference = raw_reference(classifier, texts, REFERENCE_SECONDS)
        try:
            with running_server(bundle_dir, variant, log_path, threads) as (url, pid):
                levels: dict[str, Any] = {"raw_ort_just_before": reference}

                measure = functools.partial(
                    measured_level, pid, url, texts_file, seconds=seconds_per_level, warmup=warmup
                )
                for concurrency in concurrencies:
                    levels[f"c{concurrency}"] = measure(
                        concurrency=concurrency, requests=requests.get(concurrency, 200)
                    )
                for concurrency, count in (batch_requests or {}).items():
                    levels[f"c{concurrency}_batch{BATCH_MESSAGES}"] = measure(
                        concurrency=concurrency, requests=count, messages=BATCH_MESSAGES
                    )
                if floor_requests:
                    levels["healthz_c32"] = measure(
                        concurrency=32, requests=floor_requests, path="/healthz"
                    )
                if interleaved_rounds:
                    levels["interleaved"] = interleaved_ratios(
                        classifier,
                        texts,
                        measure,
                        rounds=interleaved_rounds,
                        batch_messages=BATCH_MESSAGES,
                    )
                if levels.get("c32", {}).get("throughput_rps"):
                    levels["overload_2x"] = measured_overload(
                        url, texts_file, levels["c32"], seconds_per_level
                    )
                levels["server_rss_mb"] = round(tree_memory(pid)["rss"] / 1e6, 1)
            if more_workers:
                log_path = work_dir / f"serve-{variant}-workers{more_workers}.log"
                with running_server(
                    bundle_dir, variant, log_path, threads, workers=more_workers
                ) as (url, pid):
                    levels[f"workers{more_workers}_c32"] = measured_level(
                        pid, url, texts_file, 32, requests.get(32, 2000), seconds_per_level, warmup
                    )
            results["variants"][variant] = levels
        except (ServerStartError, RuntimeError, subprocess.TimeoutExpired) as exc:
            results["variants"][variant] = {"error": str(exc)}
    return results
