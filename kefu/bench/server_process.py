"""A real `kefu serve` process for the benchmark: start on a free localhost port, wait for
/readyz, stop the whole process group (workers included) on exit.

`running_server` is shared by the server part (`server.py`) and the profiler
(`server_profile.py`); start-up failures quote the server log's tail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HOST = "127.0.0.1"
STARTUP_SECONDS = 120.0
STOP_SECONDS = 20.0
LOG_TAIL_CHARS = 2000


class ServerStartError(RuntimeError):
    """`kefu serve` exited or never became ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def serve_command(bundle_dir: Path, port: int, workers: int = 1) -> list[str]:
    return [
        sys.executable, "-m", "kefu.cli.main", "serve",
        "--bundle", str(bundle_dir), "--host", HOST, "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip


@contextlib.contextmanager
def running_server(
    bundle_dir: Path,
    variant: str,
    log_path: Path,
    threads: int | None = None,
    workers: int = 1,
    code: Path | None = None,
) -> Iterator[tuple[str, int]]:
    """(base URL, server pid) of a ready `kefu serve`; the process group is stopped on exit.

    `threads` are the cores given to the server: each of `workers` processes gets its share.
    `code` runs the server from another checkout of kefu (to compare two versions).
    """
    port = free_port()
    env = {**os.environ, "KEFU_VARIANT": variant, "HF_HUB_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads:
        env["KEFU_ORT_THREADS"] = str(max(1, threads // workers))
    if code is not None:
        env["PYTHONPATH"] = str(code)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            serve_command(bundle_dir, port, workers),
            cwd=code,  # `python -m` puts the working directory first on the path
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, so workers stop with it
        )
        try:
            url = f"http://{HOST}:{port}"
            wait_ready(url, process, log_path)
            yield url, process.pid
        finally:
            stop(process)


def wait_ready(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(
                f"kefu serve exited with code {process.returncode} before /readyz answered; "
                f"log tail: {log_tail(log_path)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.25)
    raise ServerStartError(
        f"kefu serve did not answer /readyz within {STARTUP_SECONDS:.0f}s; "
        f"log tail: {log_tail(log_path)}"
    )


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_SECONDS)


def log_tail(log_path: Path) -> str:
    try:
        return log_path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no log)"
