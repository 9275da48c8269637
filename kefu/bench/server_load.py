"""Load generator: `python -m kefu.bench.server_load --url URL --concurrency 8 [--messages 8]`.

Runs in its own process (so its CPU work is not charged to the server's event loop) and
prints one JSON object on stdout: requests, errors, seconds, throughput (requests and messages)
and latency percentiles. `concurrency` workers, each on its own kept-alive connection, send
`POST /v1/classify` requests of `--messages` messages back to back (or `GET --path`, e.g.
/healthz for the framework's floor) until `--requests` have been sent or `--max-seconds` have
passed, whichever comes first. Only 127.0.0.1/localhost URLs are accepted.

The generator shares the machine's cores with the server, so it must cost far less per request
than the server does: requests are encoded to bytes once before the clock starts, and each
connection is a bare asyncio protocol that reads the status line and Content-Length of the
answer (on uvloop when installed). A full HTTP client costs about 1.5 ms of CPU per request
here, more than the whole server path it is meant to measure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kefu.bench.timing import latency_summary

LOCAL_HOSTS = ("127.0.0.1", "localhost")
ERROR_SAMPLES = 5  # distinct error descriptions kept in the result
CLASSIFY_PATH = "/v1/classify"


class ConnectError(OSError):
    """The server refused or dropped the connection before answering."""


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection: send a request, wait for (status, keep-alive)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectError("connection closed before the answer"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"content-length:")
        if start < 0:  # kefu always sends a length; anything else is a protocol error
            waiter.set_exception(ConnectError("answer without Content-Length"))
            return
        line_end = head.find(b"\r\n", start)
        length = int(head[start + 15 : line_end if line_end >= 0 else None])
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        waiter.set_result((int(head[9:12]), b"connection: close" not in head))

    async def exchange(self, request: bytes, timeout: float) -> tuple[int, bool]:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return await asyncio.wait_for(self.waiter, timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def encoded_requests(
    host: str, port: int, texts: list[str], messages: int, path: str
) -> list[bytes]:
    """Every request the run will cycle through, as bytes on the wire."""
    head = f"Host: {host}:{port}\r\nConnection: keep-alive\r\n"
    if path != CLASSIFY_PATH:
        return [f"GET {path} HTTP/1.1\r\n{head}\r\n".encode()]
    requests = []
    for start in range(0, len(texts), messages):
        chunk = [texts[(start + i) % len(texts)] for i in range(messages)]
        payload: dict[str, Any] = (
            {"text": chunk[0]} if messages == 1 else {"messages": [{"text": t} for t in chunk]}
        )
        body = json.dumps(payload, ensure_ascii=False).encode()
        requests.append(
            f"POST {path} HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    return requests


async def generate_load(
    url: str,
    texts: list[str],
    *,
    concurrency: int,
    requests: int,
    max_seconds: float,
    warmup: int = 0,
    messages: int = 1,
    path: str = CLASSIFY_PATH,
    request_timeout: float = 30.0,
) -> dict[str, Any]:
    """Send `requests` requests (fewer if `max_seconds` runs out) from `concurrency` workers."""
    parsed = urlparse(url)
    if parsed.hostname not in LOCAL_HOSTS:
        raise ValueError(f"load generator only targets localhost, got {url!r}")
    host, port = parsed.hostname, parsed.port or 80
    wire = encoded_requests(host, port, texts, messages, path)
    latencies_ms: list[float] = []
    errors: dict[str, int] = {}
    loop = asyncio.get_running_loop()

    async def send(
        connection: _Connection | None, request: bytes, timed: bool
    ) -> _Connection | None:
        """One request; a 200 adds its latency, anything else is counted under its kind."""
        start = time.perf_counter()
        try:
            if connection is None or not connection.open:
                _, connection = await loop.create_connection(_Connection, host, port)
            status, keep = await connection.exchange(request, request_timeout)
        except (OSError, TimeoutError) as exc:
            kind = "Timeout" if isinstance(exc, TimeoutError) else "ConnectError"
            errors[kind] = errors.get(kind, 0) + 1
            if connection is not None:
                connection.close()
            return None
        if status == 200:
            if timed:
                latencies_ms.append(1000 * (time.perf_counter() - start))
        else:
            errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
        if not keep:
            connection.close()
            return None
        return connection

    connection = None
    for index in range(warmup):
        connection = await send(connection, wire[index % len(wire)], timed=False)
    if connection is not None:
        connection.close()
    errors.clear()
    sent = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    stop_at = started + max_seconds

    async def worker() -> None:
        nonlocal sent
        own: _Connection | None = None
        while sent < requests and time.perf_counter() < stop_at:
            request = wire[sent % len(wire)]
            sent += 1
            own = await send(own, request, timed=True)
        if own is not None:
            own.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    completed = len(latencies_ms)
    return {
        "concurrency": concurrency,
        "path": path,
        "messages_per_request": messages,
        "requests": sent,
        "ok": completed,
        "errors": sum(errors.values()),
        "error_kinds": dict(sorted(errors.items(), key=lambda item: -item[1])[:ERROR_SAMPLES]),
        "seconds": elapsed,
        "throughput_rps": completed / elapsed if elapsed > 0 else 0.0,
        "msgs_per_s": completed * messages / elapsed if elapsed > 0 else 0.0,
        # the generator's own CPU per request: on a small machine it competes with the server
        "client_cpu_ms_per_request": 1000 * cpu_seconds / sent if sent else None,
        "stopped_by": "requests" if sent >= requests else "time",
        "latency": latency_summary(latencies_ms),
    }


def run(coroutine: Any) -> Any:
    """`asyncio.run` on uvloop when it is installed (a cheaper loop for the generator too)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="JSON list of message texts")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1, help="messages per request")
    parser.add_argument("--path", default=CLASSIFY_PATH, help="POST /v1/classify, else a GET")
    args = parser.parse_args(argv)
    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    result = run(
        generate_load(
            args.url,
            texts,
            concurrency=args.concurrency,
            requests=args.requests,
            max_seconds=args.max_seconds,
            warmup=args.warmup,
            messages=args.messages,
            path=args.path,
        )
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
