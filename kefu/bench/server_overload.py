"""Overload probe: `python -m kefu.bench.server_overload --url URL --rate R ...`.

Open loop, unlike `server_load`: requests of `--messages` messages each are started at a fixed
rate whatever the server answers, as many independent callers would, so the offered load stays
`--rate` requests/s even when the server falls behind. A caller waits at most `--timeout`
seconds, then hangs up (the server should drop its queued work). Prints one JSON object:
offered and served messages/s, and how refusals went: how many 503s, and their latency (a
refusal must be cheap and fast, or it eats the CPU the model needs). Localhost only; bounded
by `--seconds` and by `--max-open` requests open at once.
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


async def overload(
    url: str,
    texts: list[str],
    *,
    rate: float,
    seconds: float,
    messages: int = 8,
    timeout: float = 5.0,
    max_open: int = 512,
) -> dict[str, Any]:
    """Offer `rate` requests/s of `messages` messages for `seconds`; what was served, refused."""
    if urlparse(url).hostname not in LOCAL_HOSTS:
        raise ValueError(f"overload probe only targets localhost, got {url!r}")
    endpoint = url.rstrip("/") + "/v1/classify"
    served_ms: list[float] = []
    refused_ms: list[float] = []
    counts = {"sent": 0, "timeouts": 0, "other": 0, "not_sent": 0}
    open_requests: set[asyncio.Task] = set()
    limits = httpx.Limits(max_connections=max_open, max_keepalive_connections=max_open)

    async def one(client: httpx.AsyncClient, index: int) -> None:
        body = {
            "messages": [
                {"text": texts[(index * messages + i) % len(texts)]} for i in range(messages)
            ]
        }
        start = time.perf_counter()
        try:  # the caller's patience covers the whole request, not each socket read
            response = await asyncio.wait_for(client.post(endpoint, json=body), timeout)
        except (TimeoutError, httpx.TimeoutException):
            counts["timeouts"] += 1
            return
        except httpx.HTTPError:
            counts["other"] += 1
            return
        elapsed = 1000 * (time.perf_counter() - start)
        if response.status_code == 200:
            served_ms.append(elapsed)
        elif response.status_code == 503:
            refused_ms.append(elapsed)
        else:
            counts["other"] += 1

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        started = time.perf_counter()
        index = 0
        while (now := time.perf_counter()) - started < seconds:
            due = started + index / rate
            if due > now:
                await asyncio.sleep(due - now)
                continue
            index += 1
            if len(open_requests) >= max_open:
                counts["not_sent"] += 1  # the probe itself is saturated: reported, not hidden
                continue
            counts["sent"] += 1
            task = asyncio.create_task(one(client, index))
            open_requests.add(task)
            task.add_done_callback(open_requests.discard)
        offered_seconds = time.perf_counter() - started
        if open_requests:
            await asyncio.wait(open_requests, timeout=timeout + 1)
    return {
        "rate_rps": rate,
        "messages_per_request": messages,
        "seconds": offered_seconds,
        "offered_msgs_per_s": counts["sent"] * messages / offered_seconds,
        "served_msgs_per_s": len(served_ms) * messages / offered_seconds,
        "served": len(served_ms),
        "refused_503": len(refused_ms),
        "timeouts": counts["timeouts"],
        "other_errors": counts["other"],
        "not_sent": counts["not_sent"],
        "served_latency": latency_summary(served_ms),
        "refused_latency": {**latency_summary(refused_ms), "max_ms": max(refused_ms, default=None)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="JSON list of message texts")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--messages", type=int, default=8, help="messages per request")
    parser.add_argument("--timeout", type=float, default=5.0, help="a caller's patience, s")
    args = parser.parse_args(argv)
    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    result = asyncio.run(
        overload(
            args.url,
            texts,
            rate=args.rate,
            seconds=args.seconds,
            messages=args.messages,
            timeout=args.timeout,
        )
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
