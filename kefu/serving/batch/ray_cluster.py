"""Joining Ray for `kefu score --engine ray`, and Ray's errors and chatter made kefu's.

Usage: `started = start_ray(workers=2, address=None)` starts a local instance (address None or
"local"); "host:port", "ray://host:port" (both with the port) or "auto" joins a cluster, which is first reached
over TCP within `CONNECT_SECONDS`, so a wrong address fails in seconds with one line instead of
waiting on Ray's own retries (minutes); an address that answers but where Ray cannot connect
(another service on the port) fails with one line too, once Ray gives up, Ray's own connection
warnings held back (`held_stderr`). `RAY_ADDRESS` is honoured when no address is given, as
by `ray.init` (a `ray job submit` entrypoint gets it). `with quiet_console():` keeps Ray Data's
console logs and Ray's warnings (dataset INFO lines, progress counted in chunks, retry
tracebacks) off the terminal for a run; Ray's session log files keep them. What a run raises
through Ray is reported by `ray_errors.py`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress

from kefu.errors import ConfigError, KefuError, one_line

ADDRESS_ENV = "RAY_ADDRESS"
CONNECT_SECONDS = 5.0
# Reading is light next to scoring; with a whole CPU each, read tasks could wait forever for CPUs
# the scoring actors hold.
READ_CPUS = 0.25
# What `cluster_address` accepts, as errors and `kefu score --help` say it. The port is never
# filled in: "head" alone is refused, as is "ray://head".
ADDRESS_FORMS = (
    "the head's host:port, port included (head:6379), ray://host:port (ray://head:10001), "
    "auto or local"
)


NOTICE_SECONDS = 10.0  # a join that takes longer says it is still waiting
# What a `ray_*` module that needs Ray at its top raises in place of an ImportError
RAY_EXTRA_MISSING = (
    "--engine ray needs the ray extra: pip install 'ray[data]>=2.30,<3' "
    "(from a checkout: pip install -e '.[ray]')"
)


def start_ray(workers: int, address: str | None = None) -> bool:
    """Connect to `address` or start a local instance; True when this call initialised Ray."""
    import ray  # here, not at the top: without the ray extra, ray_engine says what to install

    if ray.is_initialized():
        return False
    option = "--ray-address"
    if address is None and os.environ.get(ADDRESS_ENV):
        address, option = os.environ[ADDRESS_ENV], ADDRESS_ENV
    cluster = cluster_address(address, option)
    where = f"the Ray cluster at {cluster}" if cluster else "a local Ray instance"
    try:
        # joining: Ray's core logs each failed connection attempt to stderr itself; the error
        # below names the cause (a local start spawns Ray's processes: their stderr is theirs)
        waiting = (
            f"still joining {where}: Ray retries for minutes where something answers that is "
            "not a Ray head; Ctrl-C stops"
        )
        with held_stderr(notice=waiting) if cluster else nullcontext():
            ray.init(
                address=cluster or "local",  # never a cluster found by chance (a stale start)
                num_cpus=workers + 1 if cluster is None else None,  # +1 for reading
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,  # not Ray's notices (token auth, "connecting")
            )
    except Exception as exc:
        error = ConfigError if cluster else KefuError  # a bad address is a bad option
        causes = [one_line(exc)]  # Ray's "failed to connect", then why (a missing auth token)
        cause = exc.__cause__
        while cause is not None and len(causes) < 3:
            causes.append(one_line(cause))
            cause = cause.__cause__
        raise error(f"cannot start or join {where}: {'; '.join(causes)}") from None
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < workers + READ_CPUS:  # else the actors or the readers wait forever for CPUs
        ray.shutdown()
        raise ConfigError(
            f"the Ray cluster has {cpus:g} CPUs; --workers {workers} needs "
            f"{workers + READ_CPUS:g} (1 per scoring actor + {READ_CPUS:g} for reading)"
        )
    return True


def cluster_address(address: str | None, option: str = "--ray-address") -> str | None:
    """The address to give `ray.init`, once the cluster answers there; None: start locally.

    "auto" stays "auto" (with it, Ray also picks up the local cluster's auth token) once what it
    finds answers. `option` names where the address came from in errors: --ray-address or
    RAY_ADDRESS."""
    if address is None or address.strip().lower() in ("", "local"):
        return None
    given = address.strip()
    address = _find_local_cluster(option) if given.lower() == "auto" else given
    if address is None:  # a Ray without the lookup: ray.init looks for itself
        return given
    host, port = _host_port(address, option)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} within {CONNECT_SECONDS:g} s "
            f"({reason}); is it up? {option} takes {ADDRESS_FORMS}",
            field=option,
        ) from None
    return given


def _host_port(address: str, option: str) -> tuple[str, int]:
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rstrip("/").rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host  # [::1]:6379
    if ":" in host and not bracketed:  # ::1 or fe80::1:6379: where would the port be?
        raise ConfigError(
            f"{option} {address!r} is not an address; an IPv6 host goes in brackets, "
            "before the port: [::1]:6379",
            field=option,
        )
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{option} {address!r} is not an address; it takes {ADDRESS_FORMS}",
            field=option,
        )
    return host, int(port)


def _find_local_cluster(option: str) -> str | None:
    """What `ray.init(address="auto")` would join: the latest `ray start` on this machine.
    `option` names where "auto" came from: --ray-address or RAY_ADDRESS."""
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # a private helper: another Ray version may move it
        return None
    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except (ConnectionError, ValueError) as exc:
        leave_out = "unset RAY_ADDRESS" if option == ADDRESS_ENV else f"leave out {option}"
        raise ConfigError(
            f"{option} auto found no Ray cluster ({one_line(exc)}); start one with "
            f"`ray start --head`, or {leave_out} for a local instance",
            field=option,
        ) from None


@contextmanager
def held_stderr(notice: str | None = None) -> Iterator[None]:
    """File descriptor 2 goes to a temporary file while inside, then back; `notice`, if still
    inside after NOTICE_SECONDS, goes to the real stderr, so a long wait is not a silent one.

    Ray's C++ core writes its warnings straight to file descriptor 2 (`[... W ...]
    rpc_client.h:153: Failed to connect to GCS at address ... within 5 seconds.`, once per
    attempt), out of reach of Python's logging and of RAY_BACKEND_LOG_LEVEL (read only once
    the driver's log is set up). Held back, they are dropped when the block ends normally or
    with an exception (which says what went wrong); on an interrupt (Ctrl-C during a long
    wait) they are written out after all, to show what Ray was waiting for.
    """
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a daemon): nothing to hold
        yield
        return
    timer = threading.Timer(NOTICE_SECONDS, os.write, (saved, f"{notice}\n".encode()))
    timer.daemon = True
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        interrupted = False
        if notice:
            timer.start()
        try:
            yield
        except BaseException as exc:
            interrupted = not isinstance(exc, Exception)
            raise
        finally:
            if notice:
                timer.cancel()
                timer.join()  # never a write to `saved` after it is closed
            _flush_stderr()  # what Python wrote meanwhile belongs to the held file too
            os.dup2(saved, 2)
            os.close(saved)
            if interrupted:
                held.seek(0)
                os.write(2, held.read())


def _flush_stderr() -> None:
    with suppress(AttributeError, OSError, ValueError):  # None, or closed
        sys.stderr.flush()


@contextmanager
def quiet_console() -> Iterator[None]:
    """Ray Data logs to its files only, and Ray's Python warnings are not shown, while inside."""
    mute = _MuteAll()
    handlers = [
        handler
        for handler in logging.getLogger("ray.data").handlers
        if isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
    ]
    for handler in handlers:
        handler.addFilter(mute)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"ray\.")
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(mute)


class _MuteAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False
