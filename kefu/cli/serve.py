"""`kefu serve --bundle models/default --host 127.0.0.1 --port 8000 [--workers N]`.

Options override KEFU_* environment variables (kefu/serving/settings.py lists them all). The bundle
and the routing policy are validated before uvicorn starts, so a bad bundle or policy stops
here with one line naming the problem (exit code 2) instead of a traceback per worker. One
worker serves the app object directly; several workers rebuild their settings from KEFU_*
variables through the `kefu.serving.server.app:app_from_env` factory and share metrics through
PROMETHEUS_MULTIPROC_DIR. Either way uvicorn speaks HTTP through kefu's subclass of its
httptools protocol, which adds the request-head time limit and writes kefu's answers where
uvicorn answers alone (kefu/serving/server/protocol.py).
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # settings load lazily: `kefu --help` stays fast
    from kefu.serving.settings import Settings


def command(
    bundle: Path = typer.Option(None, "--bundle", help="Bundle directory (env KEFU_BUNDLE)."),
    host: str = typer.Option(
        None, "--host", help="Bind address (env KEFU_HOST; default 127.0.0.1)."
    ),
    port: int = typer.Option(None, "--port", help="Port (env KEFU_PORT; default 8000)."),
    workers: int = typer.Option(
        None, "--workers", help="Worker processes (env KEFU_WORKERS; default 1)."
    ),
    variant: str = typer.Option(
        None, "--variant", help="fp32 or int8 (env KEFU_VARIANT; default bundle default)."
    ),
    policy: Path = typer.Option(None, "--policy", help="Routing policy YAML (env KEFU_POLICY)."),
    ort_threads: int = typer.Option(
        None,
        "--ort-threads",
        help="Model threads per worker, one ORT call each (env KEFU_ORT_THREADS; "
        "default cores/workers).",
    ),
    log_level: str = typer.Option(
        None, "--log-level", help="debug|info|warning|error (env KEFU_LOG_LEVEL)."
    ),
) -> None:
    from kefu.serving.settings import load_settings

    overrides = {
        "bundle": bundle,
        "host": host,
        "port": port,
        "workers": workers,
        "variant": variant,
        "policy": policy,
        "ort_threads": ort_threads,
        "log_level": log_level,
    }
    settings = load_settings(
        **{key: value for key, value in overrides.items() if value is not None}
    )
    check_before_start(settings)
    run(settings)


def check_before_start(settings: Settings) -> None:
    """Bundle readable, variant present, policy valid: the cheap checks, before any worker."""
    from kefu.serving.deployment import check_deployable

    check_deployable(settings.bundle, settings.variant, settings.policy)


# After the drain (kefu/serving/server/drain.py) nothing is in flight but what arrived in its
# last moment; uvicorn gives that this long before it cancels.
FINAL_SHUTDOWN_SECONDS = 5


def run(settings: Settings) -> None:
    import uvicorn

    from kefu.serving.server.access_log import log_config
    from kefu.serving.server.protocol import http_protocol

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        # uvicorn's, with a head timeout and kefu's answers where uvicorn answers alone
        "http": http_protocol(
            settings.head_timeout_seconds, settings.retry_after_seconds, settings.max_body_bytes
        ),
        "log_config": log_config(settings.log_level),
        # HTTP/1.1 only: a WebSocket handshake is served as a plain request (protocol.py), not
        # answered 403 by uvicorn when some package happens to install a WebSocket library
        "ws": "none",
        "access_log": False,  # kefu writes its own access log: one JSON line per request
        "server_header": False,
        "limit_concurrency": settings.limit_concurrency,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "timeout_graceful_shutdown": FINAL_SHUTDOWN_SECONDS,
    }
    if settings.workers == 1:
        from kefu.serving.server.app import create_app

        # uvicorn restores the SIGTERM handler it found and raises the signal again once it has
        # shut down gracefully; the default handler would then end an orderly stop, every
        # request answered, with status 143. Exit 0, as the supervisor of several workers does.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # the caller's: checked, never emptied
            prepare_metrics_dir(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]), empty=False)
        uvicorn.run(create_app(settings), **options)
        return
    os.environ.update(settings.env())
    with tempfile.TemporaryDirectory(prefix="kefu-metrics-") as metrics_dir:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # unset or empty
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        prepare_metrics_dir(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
        uvicorn.run(
            "kefu.serving.server.app:app_from_env",
            factory=True,
            workers=settings.workers,
            **options,
        )


PROMETHEUS_FILE_KINDS = ("counter", "gauge", "histogram", "summary")


def prepare_metrics_dir(path: Path, empty: bool = True) -> None:
    """The workers' shared metrics folder must exist, and for a new set of workers start empty:
    prometheus-client adds up every file in it, so a previous run's files would carry its counts
    over, and a missing folder kills each worker at its first metric (and uvicorn restarts it,
    forever). One worker only checks it: it may be another live process's."""
    from kefu.errors import ConfigError

    if not path.is_dir() or not os.access(path, os.W_OK):
        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={path} is not a writable directory; create it, or unset "
            "it and kefu serve uses a temporary one"
        )
    if not empty:
        return
    for kind in PROMETHEUS_FILE_KINDS:  # prometheus-client's own files, nothing else there
        for stale in path.glob(f"{kind}_*.db"):
            stale.unlink()
