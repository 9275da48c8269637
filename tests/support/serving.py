"""Helpers shared by the serving tests: settings isolated from the caller's KEFU_* variables,
the body of an error answer, bundle copies with another model version, a free localhost port
and a real `kefu serve`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import httpx

from kefu.serving.bundle.schema import MANIFEST
from kefu.serving.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
JSON = {"content-type": "application/json"}  # the headers of a request sent with a JSON body


def error(code: str, message: str, field: str | None = None) -> dict:
    """An error answer's body, as the API spells every one: code, message, field."""
    return {"error": {"code": code, "message": message, "field": field}}


def isolated_settings(bundle: Path, **overrides) -> Settings:
    """Settings for a test: one ORT thread, no wait, nothing taken from the environment."""
    values = {"bundle": bundle, "ort_threads": 1, "batch_max_wait_ms": 0.0, **overrides}
    clean = {key: value for key, value in os.environ.items() if not key.startswith("KEFU_")}
    with mock.patch.dict(os.environ, clean, clear=True):
        return Settings(**values)


def copy_bundle(
    source: Path,
    target: Path,
    model_version: str | None = None,
    untrained_heads: list[str] | None = None,
    max_length: int | None = None,
) -> Path:
    """A copy of a bundle; a new model_version, untrained_heads or max_length keeps it valid
    (the manifest is not hashed)."""
    shutil.copytree(source, target)
    changes = {
        "model_version": model_version,
        "untrained_heads": untrained_heads,
        "max_length": max_length,
    }
    changes = {key: value for key, value in changes.items() if value is not None}
    if changes:
        manifest_path = target / MANIFEST
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest_path.write_text(json.dumps(manifest | changes), encoding="utf-8")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


KEFU = Path(sys.executable).with_name("kefu")


class Server:
    def __init__(self, bundle: Path, log_path: Path, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        clean_env = {key: value for key, value in os.environ.items() if not key.startswith("KEFU_")}
        self.log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                str(KEFU),
                "serve",
                "--bundle",
                str(bundle),
                "--port",
                str(self.port),
                "--ort-threads",
                "1",
                *args,
            ],
            cwd=REPO_ROOT,
            env={**clean_env, "HF_HUB_OFFLINE": "1", **(env or {})},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"kefu serve exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"kefu serve not ready after {timeout}s:\n{self.log()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def connect(port: int) -> socket.socket:
    """A raw client socket to the server on `port`, for requests written byte by byte."""
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers = {key.lower(): value for key, value in headers.items()}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, rest[:length]


def metric(url: str, name: str, **labels: str) -> float:
    """Value of one sample of /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.split()[-1])
    return 0.0
