"""Load generator: `python -m kefu.bench.server_load --url URL --concurrency 8 ...`.

Runs in its own process (so its CPU work is not charged to the server's event loop) and
prints one JSON object on stdout: requests, errors, seconds, throughput and latency
percentiles. `concurrency` asyncio workers share one httpx client and send single-message
`POST /v1/classify` requests back to back until `--requests` have been sent or
`--max-seconds` have passed, whichever comes first. Only 127.0.0.1/localhost URLs are accepted.
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

import httpx

from kefu.bench.timing import latency_summary

LOCAL_HOSTS = ("127.0.0.1", "localhost")
ERROR_SAMPLES = 5  # distinct error descriptions kept in the result


async def generate_load(
    url: str,
    texts: list[str],
    *,
    concurrency: int,
    requests: int,
    max_seconds: float,
    warmup: int = 0,
    request_timeout: float = 30.0,
) -> dict[str, Any]:
    """Send `requests` requests (fewer if `max_seconds` runs out) from `concurrency` workers."""
    if urlparse(url).hostname not in LOCAL_HOSTS:
        raise ValueError(f"load generator only targets localhost, got {url!r}")
    endpoint = url.rstrip("/") + "/v1/classify"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies_ms: list[float] = []
    errors: dict[str, int] = {}
    async with httpx.AsyncClient(limits=limits, timeout=request_timeout) as client:
        for index in range(warmup):
            await _send(client, endpoint, texts[index % len(texts)], [], {})
        sent = 0
        cpu_started = time.process_time()
        started = time.perf_counter()
        stop_at = started + max_seconds

        async def worker() -> None:
            nonlocal sent
            while sent < requests and time.perf_counter() < stop_at:
                text = texts[sent % len(texts)]
                sent += 1
                await _send(client, endpoint, text, latencies_ms, errors)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    completed = len(latencies_ms)
    return {
        "concurrency": concurrency,
        "requests": sent,
        "ok": completed,
        "errors": sum(errors.values()),
        "error_kinds": dict(sorted(errors.items(), key=lambda item: -item[1])[:ERROR_SAMPLES]),
        "seconds": elapsed,
        "throughput_rps": completed / elapsed if elapsed > 0 else 0.0,
        # the generator's own CPU per request: on a small machine it competes with the server
        "client_cpu_ms_per_request": 1000 * cpu_seconds / sent if sent else None,
        "stopped_by": "requests" if sent >= requests else "time",
        "latency": latency_summary(latencies_ms),
    }


async def _send(
    client: httpx.AsyncClient,
    endpoint: str,
    text: str,
    latencies_ms: list[float],
    errors: dict[str, int],
) -> None:
    """One request; a 200 adds its latency, anything else is counted under its kind."""
    start = time.perf_counter()
    try:
        response = await client.post(endpoint, json={"text": text})
    except httpx.HTTPError as exc:
        kind = type(exc).__name__
    else:
        if response.status_code == 200:
            latencies_ms.append(1000 * (time.perf_counter() - start))
            return
        kind = f"HTTP {response.status_code}"
    errors[kind] = errors.get(kind, 0) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="JSON list of message texts")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)
    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    result = asyncio.run(
        generate_load(
            args.url,
            texts,
            concurrency=args.concurrency,
            requests=args.requests,
            max_seconds=args.max_seconds,
            warmup=args.warmup,
        )
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
