"""Where the server's CPU goes per request: `python -m kefu.bench.server_profile --bundle DIR`.

Starts `kefu serve` (INT8 unless `--variant`), loads it with `server_load` at `--concurrency`
and samples it with py-spy (`pip install py-spy`; it needs ptrace rights over the server) while
the load runs. Each thread's CPU comes from /proc; a Python thread's CPU is split between
categories by the share of its py-spy samples whose stack holds a category's code (first
match in `CATEGORIES`); threads with no Python stack are ONNX Runtime's pool threads. Prints a
markdown table of CPU ms per request by category, and the run's JSON with `--json`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kefu.bench.server import run_load_generator
from kefu.bench.server_process import running_server
from kefu.bench.workload import load_workload

# (category, code locations that put a sample there); the first that matches a stack wins.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model: ORT session.run", ("run (onnxruntime",)),
    ("model: tokenise (normalise, encode_batch, pad)", ("tokenization.py",)),
    (
        "model: probabilities, top-k, entities, human request, routing",
        ("classifier.py", "routing.py", "entities.py", "deployment.py"),
    ),
    ("access log (record, entries, masking, JSON, write)", ("logging/", "masking.py")),
    ("metrics", ("prometheus_client",)),
    (
        "response: build + validate + serialise",
        ("build_results", "result_payloads", "response_json", "serialize_response", "render ("),
    ),
    (
        "request: JSON + validation + limits",
        ("json/decoder", "request_body_to_args", "check_messages", "validate_python"),
    ),
    ("micro-batcher hand-off", ("microbatch.py", "concurrent/futures", "model_holder.py")),
    ("FastAPI routing, dependencies, middleware", ("fastapi/", "starlette/", "/server/")),
    ("uvicorn HTTP protocol + event loop", ("uvicorn/", "asyncio/", "uvloop")),
)
NATIVE = "model: ORT pool thread (native)"
OTHER = "other"


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of each thread of `pid`."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def category(stack: str) -> str:
    for name, places in CATEGORIES:
        if any(place in stack for place in places):
            return name
    return OTHER


def read_samples(collapsed: Path) -> dict[int, collections.Counter]:
    """{thread id: Counter(category -> samples)} from py-spy's raw output with --threads."""
    threads: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        head = stack.split(";", 1)[0]  # "thread (12345): name" or "thread (0x...)"
        try:
            tid = int(head.split("(", 1)[1].split(")", 1)[0], 0)
        except (IndexError, ValueError):
            continue
        threads[tid][category(stack)] += int(count)
    return threads


def profile(
    bundle: Path,
    variant: str,
    concurrency: int,
    requests: int,
    messages: int,
    threads: int,
    server_code: Path | None = None,
) -> dict[str, Any]:
    """One profiled load run; `server_code` runs the server from another checkout (before/after)."""
    spy = py_spy()
    work = Path(tempfile.mkdtemp(prefix="kefu-profile-"))
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(load_workload().sample(4096, seed=0), ensure_ascii=False))
    with running_server(bundle, variant, work / "serve.log", threads, code=server_code) as (
        url,
        pid,
    ):
        run_load_generator(url, texts_file, concurrency, 300, 60, 20, messages)  # warm
        collapsed = work / "profile.txt"
        sampler = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--threads",
             "--format", "raw", "--output", str(collapsed), "--duration", "600"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)
        before = thread_cpu(pid)
        load = run_load_generator(url, texts_file, concurrency, requests, 120, 0, messages)
        after = thread_cpu(pid)
        sampler.send_signal(signal.SIGINT)
        sampler.wait(60)
    served = load["requests"]
    samples = read_samples(collapsed) if collapsed.exists() else {}
    per_request: collections.Counter = collections.Counter()
    for tid, seconds in after.items():
        used = 1000 * (seconds - before.get(tid, 0.0)) / served
        counts = samples.get(tid)
        if not counts:
            per_request[NATIVE if tid != pid else OTHER] += used
            continue
        total = sum(counts.values())
        for name, count in counts.items():
            per_request[name] += used * count / total
    shutil.rmtree(work, ignore_errors=True)
    return {
        "variant": variant,
        "concurrency": concurrency,
        "messages_per_request": messages,
        "load": load,
        "cpu_ms_per_request": dict(per_request.most_common()),
        "cpu_ms_per_request_total": sum(per_request.values()),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


class ProfilerMissing(RuntimeError):
    pass


def py_spy() -> str:
    """py-spy beside this Python or on PATH; it is a profiling tool, not a kefu dependency."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise ProfilerMissing(
            "py-spy is not installed: `pip install py-spy==0.4.3` in this environment "
            "(it also needs ptrace rights over the server process)"
        )
    return found


def markdown(result: dict[str, Any]) -> str:
    rows = ["| where | CPU ms / request |", "|---|---:|"]
    rows += [f"| {name} | {ms:.3f} |" for name, ms in result["cpu_ms_per_request"].items()]
    rows.append(f"| **total** | **{result['cpu_ms_per_request_total']:.3f}** |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--messages", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--server-code", type=Path, help="run the server from this checkout")
    parser.add_argument("--json", action="store_true", help="print the run as JSON too")
    args = parser.parse_args(argv)
    try:  # profile() looks for py-spy before it starts a server
        result = profile(
            args.bundle, args.variant, args.concurrency, args.requests, args.messages,
            args.threads, args.server_code,
        )  # fmt: skip
    except ProfilerMissing as exc:
        print(f"server_profile: {exc}", file=sys.stderr)
        return 2
    print(markdown(result))
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
