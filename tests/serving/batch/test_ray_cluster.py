"""Joining Ray: a bad --ray-address fails in seconds with one line, before Ray starts (what a
run raises through Ray: test_ray_errors.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import typer
from support.chat_logs import chat_log, write_csv
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.errors import ConfigError

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

from kefu.serving.batch import ray_cluster  # noqa: E402
from kefu.serving.batch.ray_cluster import (  # noqa: E402
    ADDRESS_FORMS,
    cluster_address,
    start_ray,
)

runner = CliRunner()
FORMS = (
    "the head's host:port, port included (head:6379), ray://host:port (ray://head:10001), "
    "auto or local"
)


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


def not_ray(stop: threading.Event) -> int:
    """A port that answers TCP (kefu's pre-check passes) and closes at once: not a Ray GCS.
    On every interface: Ray connects to the machine's own address in place of 127.0.0.1."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)

    def serve():
        with server:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    server.accept()[0].close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


@pytest.mark.ray
def test_an_address_where_ray_cannot_connect_is_one_line_without_rays_own(tmp_path, tiny_bundle):
    """Ray's core logged each failed attempt on stderr (`rpc_client.h:153: Failed to connect to
    GCS ...`) before kefu's line; those lines are held back, the error names the cause."""
    stop = threading.Event()
    port = not_ray(stop)
    source = write_csv(chat_log(5, bad=False), tmp_path / "log.csv")
    # Ray's own timeouts cut to a second and one attempt, so the test takes seconds, not minutes
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {
        "RAY_gcs_server_port_wait_time_s": "1",
        "RAY_py_gcs_connect_timeout_s": "1",
        "RAY_gcs_rpc_server_connect_timeout_s": "1",
    }
    command = [sys.executable, "-m", "kefu.cli.main", "score", str(source)]
    command += ["-o", str(tmp_path / "out.parquet"), "--bundle", str(tiny_bundle)]
    command += ["--no-progress", "--engine", "ray", "--workers", "1"]
    command += ["--ray-address", f"127.0.0.1:{port}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    finally:
        stop.set()
    assert (done.returncode, done.stdout) == (2, "")
    # one line, after the notice that a join slower than NOTICE_SECONDS is still waiting
    *notices, last = done.stderr.splitlines()
    assert all(line.startswith("still joining the Ray cluster at") for line in notices), notices
    assert len(notices) <= 1
    assert last.startswith(
        f"kefu score: cannot start or join the Ray cluster at 127.0.0.1:{port}: "
    )
    assert "rpc_client" not in done.stderr and "gcs_client" not in done.stderr


RAY_SAYS = b"[2026-01-01 00:00:00,000 W 1 1] rpc_client.h:153: Failed to connect to GCS\n"


@pytest.mark.ray
@pytest.mark.parametrize("ends", ["in an error", "interrupted"])
def test_rays_own_connection_lines_are_shown_only_when_interrupted(monkeypatch, capfd, ends):
    """An error says why in kefu's one line; Ctrl-C during a long wait shows what Ray said."""
    stop = threading.Event()
    port = not_ray(stop)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def init(**options):
        os.write(2, RAY_SAYS)  # as Ray's C++ core writes: to file descriptor 2 itself
        if ends == "interrupted":
            raise KeyboardInterrupt
        raise ConnectionError("Failed to connect to Ray cluster")

    monkeypatch.setattr(ray, "init", init)
    try:
        if ends == "interrupted":
            with pytest.raises(KeyboardInterrupt):
                start_ray(1, f"127.0.0.1:{port}")
        else:
            with pytest.raises(ConfigError, match="ConnectionError: Failed to connect"):
                start_ray(1, f"127.0.0.1:{port}")
    finally:
        stop.set()
    assert capfd.readouterr().err == (RAY_SAYS.decode() if ends == "interrupted" else "")


@pytest.mark.ray
def test_a_slow_join_says_it_is_still_waiting_and_holds_rays_lines(monkeypatch, capfd):
    """A join that takes longer than NOTICE_SECONDS is not a silent wait; Ray's lines stay held."""
    stop = threading.Event()
    port = not_ray(stop)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray_cluster, "NOTICE_SECONDS", 0.05)

    def init(**options):
        os.write(2, RAY_SAYS)
        time.sleep(0.5)
        raise ConnectionError("Failed to connect to Ray cluster")

    monkeypatch.setattr(ray, "init", init)
    try:
        with pytest.raises(ConfigError, match="ConnectionError: Failed to connect"):
            start_ray(1, f"127.0.0.1:{port}")
    finally:
        stop.set()
    assert capfd.readouterr().err == (
        f"still joining the Ray cluster at 127.0.0.1:{port}: Ray retries for minutes where "
        "something answers that is not a Ray head; Ctrl-C stops\n"
    )


@pytest.mark.parametrize("address", ["head", "ray://head", "head:", "ray://head:port"])
def test_an_address_without_its_port_is_refused_and_the_error_says_the_port_is_needed(address):
    with pytest.raises(ConfigError) as caught:
        cluster_address(address)
    assert str(caught.value) == f"--ray-address {address!r} is not an address; it takes {FORMS}"
    assert "port included" in str(caught.value) and "by default" not in str(caught.value)


def test_the_score_help_lists_the_address_forms_the_errors_list():
    score = typer.main.get_command(app).commands["score"]  # type: ignore[attr-defined]
    (option,) = [param for param in score.params if param.name == "ray_address"]
    assert option.help == (
        f"Ray cluster to join: {ADDRESS_FORMS} "
        "(default: RAY_ADDRESS when set, else a local Ray instance)."
    )
    assert ADDRESS_FORMS == FORMS


@pytest.mark.parametrize("address", ["::1", "fe80::1:6379", "ray://::1:10001"])
def test_an_ipv6_host_without_brackets_is_not_an_address(address):
    with pytest.raises(ConfigError) as caught:
        cluster_address(address)
    assert str(caught.value) == (
        f"--ray-address {address!r} is not an address; an IPv6 host goes in brackets, "
        "before the port: [::1]:6379"
    )


def test_an_ipv6_host_in_brackets_is_reached():
    with socket.socket(socket.AF_INET6) as head:
        head.bind(("::1", 0))
        head.listen()
        port = head.getsockname()[1]
        for address in (f"[::1]:{port}", f"ray://[::1]:{port}"):
            assert cluster_address(address) == address


@pytest.mark.parametrize(
    ("option", "fix"),
    [("--ray-address", "leave out --ray-address"), ("RAY_ADDRESS", "unset RAY_ADDRESS")],
)
def test_auto_without_a_cluster_names_where_auto_came_from(monkeypatch, option, fix):
    import ray._private.services as services

    def no_cluster(address):
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(services, "canonicalize_bootstrap_address_or_die", no_cluster)
    with pytest.raises(ConfigError) as caught:
        cluster_address("auto", option)
    assert (str(caught.value), caught.value.field) == (
        f"{option} auto found no Ray cluster (ConnectionError: Could not find any running Ray "
        f"instance.); start one with `ray start --head`, or {fix} for a local instance",
        option,
    )
