"""How much each benchmark part measures: counts and time limits, FULL and QUICK.

FULL is `kefu bench` (about 8 minutes on 2 cores with m3e-small, never past `total_seconds`);
QUICK is `--quick`, a smoke run of every part in about a minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BenchPlan:
    """Counts and time limits per part. FULL fits in 20 minutes on 2 cores with m3e-small."""

    ort_messages: int = 1024  # messages per (variant, batch size) point
    ort_seconds: float = 15.0
    torch_messages: int = 256
    torch_seconds: float = 20.0
    server_requests: dict[int, int] = field(default_factory=lambda: {1: 300, 8: 1500, 32: 3000})
    # 8-message requests per concurrency; GET /healthz requests at c=32; a second server with
    # this many workers takes the c=32 load (0: not run)
    server_batch_requests: dict[int, int] = field(default_factory=lambda: {8: 400, 32: 1000})
    server_floor_requests: int = 5000
    server_more_workers: int = 2
    server_seconds: float = 30.0  # per concurrency level
    server_warmup: int = 20
    server_interleaved_rounds: int = 5  # raw ORT / server rounds for the headline ratios
    score_rows: int = 100_000
    score_engines: tuple[str, ...] = ("local", "ray")
    total_seconds: float = 19 * 60.0  # batch scoring gets what the earlier parts leave
    train_steps: int = 6
    train_seconds: float = 90.0
    matmul_size: int = 2048


FULL = BenchPlan()
QUICK = BenchPlan(
    ort_messages=32,
    ort_seconds=3.0,
    torch_messages=32,
    torch_seconds=5.0,
    server_requests={1: 20, 8: 48, 32: 64},
    server_batch_requests={8: 16, 32: 32},
    server_floor_requests=200,
    server_seconds=10.0,
    server_warmup=2,
    server_interleaved_rounds=1,
    score_rows=2_000,
    score_engines=("local",),
    total_seconds=600.0,
    train_steps=2,
    train_seconds=30.0,
    matmul_size=512,
)
