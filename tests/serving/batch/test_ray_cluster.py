"""Joining Ray: a bad --ray-address fails in seconds with one line, before Ray starts."""

from __future__ import annotations

import socket
import time

import pytest
from support.chat_logs import chat_log, write_csv
from typer.testing import CliRunner

from kefu.cli.main import app

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

runner = CliRunner()
FORMS = "the head's host:port (port 6379 by default), ray://host:10001, auto or local"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens on it once the socket is closed


@pytest.mark.ray
@pytest.mark.parametrize("form", ["option", "ray-client option", "RAY_ADDRESS", "no port"])
def test_a_bad_ray_address_fails_in_seconds_with_one_line(tmp_path, tiny_bundle, monkeypatch, form):
    port = closed_port()
    address = {"ray-client option": f"ray://127.0.0.1:{port}", "no port": "head"}.get(
        form, f"127.0.0.1:{port}"
    )
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if form == "RAY_ADDRESS":  # what `ray job submit` gives its entrypoint
        monkeypatch.setenv("RAY_ADDRESS", address)
    source = write_csv(chat_log(20, bad=False), tmp_path / "log.csv")
    out = tmp_path / "out.parquet"
    args = ["score", str(source), "-o", str(out), "--bundle", str(tiny_bundle), "--no-progress"]
    args += ["--engine", "ray", "--workers", "1"]
    started = time.monotonic()
    result = runner.invoke(
        app, args if form == "RAY_ADDRESS" else [*args, "--ray-address", address]
    )
    if form == "no port":
        expected = f"--ray-address 'head' is not an address; it takes {FORMS}"
    else:
        option = "RAY_ADDRESS" if form == "RAY_ADDRESS" else "--ray-address"
        expected = (
            f"cannot reach the Ray cluster at {address} within 5 s (Connection refused); "
            f"is it up? {option} takes {FORMS}"
        )
    assert (result.exit_code, result.output) == (2, f"kefu score: {expected}\n")
    assert time.monotonic() - started < 10
    assert not ray.is_initialized()
    assert not (tmp_path / "out.parquet.partial").exists()
