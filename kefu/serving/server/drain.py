"""Graceful shutdown: on SIGTERM, stop being ready, finish what is in flight, then exit.

uvicorn on its own stops accepting connections at the first SIGTERM and closes idle kept-alive
ones, so a load balancer still routing to the process sees refused or reset connections. The
drain puts a phase before that: `/readyz` answers 503 at once (the balancer stops sending),
every answer carries `Connection: close` (kept-alive clients reconnect elsewhere), requests
still arriving are served, and once no request is in flight, or `KEFU_DRAIN_SECONDS` have
passed, uvicorn's own shutdown runs: it closes the listener, lets the last answers go out and
runs the lifespan shutdown, whose micro-batcher finishes what is queued.

The handler wraps uvicorn's (installed before the app's lifespan starts, in every worker) and
hands the signal on to it when the drain is over; a second SIGTERM hands it on at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

log = logging.getLogger("kefu.runtime")
POLL_SECONDS = 0.05


class Drain:
    """Shutdown state of one app: `draining` after SIGTERM, `active` requests in flight."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.draining = False
        self.active = 0  # requests in flight, kept by RequestContextMiddleware
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def install(self) -> bool:
        """Take over SIGTERM for this process (main thread only); False when not possible."""
        if threading.current_thread() is not threading.main_thread():
            return False  # e.g. an app run by a test client on a worker thread
        self._loop = asyncio.get_running_loop()
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return True

    def uninstall(self) -> None:
        if self._previous is not None and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous)

    def _on_sigterm(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or self._loop is None:
            self._hand_on()
            return
        self._loop.call_soon_threadsafe(self.begin)

    def begin(self) -> None:
        """Start draining (on the event loop)."""
        if self.draining:
            return
        self.draining = True
        log.info(
            "draining",
            extra={"fields": {"in_flight": self.active, "drain_seconds": self.seconds}},
        )
        self._task = asyncio.get_running_loop().create_task(self._finish())

    async def _finish(self) -> None:
        deadline = time.monotonic() + self.seconds
        while self.active > 0 and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
        log.info("drained", extra={"fields": {"in_flight": self.active}})
        self._hand_on()

    def _hand_on(self) -> None:
        """Give SIGTERM to the handler that was there before (uvicorn's: shut down)."""
        previous = self._previous
        if callable(previous):
            previous(signal.SIGTERM, None)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
