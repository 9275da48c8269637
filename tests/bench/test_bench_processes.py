"""The benchmark parts that start processes: `kefu serve` under load and `kefu score`.

Real processes on the tiny bundle, tiny request and row counts; localhost only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from kefu.bench.batch_scoring import bench_batch_scoring, last_progress, rows_that_fit
from kefu.bench.proctree import descendants, tree_memory
from kefu.bench.server import bench_server
from kefu.bench.server_load import generate_load
from kefu.bench.server_process import free_port
from kefu.bench.workload import load_workload


@pytest.fixture(scope="module")
def texts():
    return load_workload().sample(200, seed=0)


def test_server_part_loads_a_real_kefu_serve_per_variant(tiny_bundle, texts, tmp_path):
    results = bench_server(
        tiny_bundle, texts, tmp_path, concurrencies=(1, 8), requests={1: 10, 8: 24},
        seconds_per_level=20, warmup=2, threads=1,
    )  # fmt: skip
    for variant in ("int8", "fp32"):
        levels = results["variants"][variant]
        assert "error" not in levels, levels
        assert levels["c1"]["requests"] == levels["c1"]["ok"] == 10
        assert levels["c8"]["requests"] == levels["c8"]["ok"] == 24
        assert levels["c8"]["errors"] == 0 and levels["c8"]["stopped_by"] == "requests"
        assert levels["c8"]["latency"]["n"] == 24
        assert levels["c8"]["server_cpu_ms_per_request"] > 0
        assert levels["c8"]["client_cpu_ms_per_request"] > 0
        assert levels["server_rss_mb"] > 0
        assert set(levels["raw_ort_just_before"]) == {
            "b1_p50_ms",
            "b8_msgs_per_s",
            "b32_msgs_per_s",
        }


def test_load_generator_counts_refused_connections_as_errors(texts):
    port = free_port()  # nothing listens there
    result = asyncio.run(
        generate_load(f"http://127.0.0.1:{port}", texts, concurrency=2, requests=6, max_seconds=10)
    )
    assert (result["requests"], result["ok"], result["errors"]) == (6, 0, 6)
    assert result["error_kinds"] == {"ConnectError": 6}


def test_load_generator_only_targets_localhost(texts):
    with pytest.raises(ValueError, match="only targets localhost"):
        asyncio.run(
            generate_load("http://example.com", texts, concurrency=1, requests=1, max_seconds=1)
        )


def test_batch_scoring_part_runs_kefu_score_and_reads_its_memory(tiny_bundle, texts, tmp_path):
    results = bench_batch_scoring(
        tiny_bundle, texts * 2, tmp_path, engines=("local",), budget_seconds=120
    )
    local = results["engines"]["local"]
    assert "error" not in local, local
    assert (local["rows"], local["scored"], local["rejected"]) == (400, 400, 0)
    assert local["rows_per_s"] > 0 and local["peak_pss_mb"] > 0
    assert "reduced_from" not in local
    assert local["raw_ort_just_before"]["b32_msgs_per_s"] > 0


def test_a_stopped_run_keeps_the_rate_of_its_last_progress_line():
    log = (
        "scoring: 4096/~100000 rows, 251 rows/s, ETA 382 s\n"
        "scoring: 8192/~100000 rows, 1,254 rows/s, ETA 70 s\n"
    )
    assert last_progress(log) == (8192, 1254.0)
    assert last_progress("rows read 10 = scored 10 + rejected 0\n") is None


def test_rows_are_cut_to_what_fits_the_time_budget():
    assert rows_that_fit(100_000, 600, None) == 100_000
    assert rows_that_fit(100_000, 630, 1000.0) == 100_000
    # (330 s - 30 s start-up) * 100 rows/s * 0.85 = 25,500 -> whole thousands
    assert rows_that_fit(100_000, 330, 100.0) == 25_000
    assert rows_that_fit(100_000, 10, 100.0) == 1_000
    assert rows_that_fit(500, 10, 100.0) == 500


def test_process_tree_memory_includes_children():
    child_code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])"
    parent = subprocess.Popen([sys.executable, "-c", child_code])
    try:
        deadline = time.monotonic() + 10
        while not descendants(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        memory = tree_memory(parent.pid)
        assert memory["processes"] == 2
        assert memory["rss"] > 0 and memory["pss"] > 0
    finally:
        for pid in descendants(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_server_part_measures_batched_requests_the_framework_floor_and_two_workers(
    tiny_bundle, texts, tmp_path
):
    results = bench_server(
        tiny_bundle, texts, tmp_path, variants=("int8",), concurrencies=(1,), requests={1: 6},
        batch_requests={8: 4}, floor_requests=40, more_workers=2, seconds_per_level=20,
        warmup=2, threads=2, interleaved_rounds=2,
    )  # fmt: skip
    levels = results["variants"]["int8"]
    assert "error" not in levels, levels
    batched = levels["c8_batch8"]
    assert (batched["requests"], batched["ok"], batched["errors"]) == (4, 4, 0)
    assert batched["messages_per_request"] == 8
    assert batched["msgs_per_s"] == pytest.approx(8 * batched["throughput_rps"])
    assert batched["server_cpu_ms_per_message"] == pytest.approx(
        batched["server_cpu_ms_per_request"] / 8
    )
    floor = levels["healthz_c32"]
    assert (floor["path"], floor["ok"], floor["errors"]) == ("/healthz", 40, 0)
    assert floor["server_cpu_ms_per_message"] is None
    rounds = levels["interleaved"]["rounds"]
    assert len(rounds) == 2 and levels["interleaved"]["errors"] == 0
    ratios = [r["server_c1_p50_ms"] / r["raw_b1_p50_ms"] for r in rounds]
    assert levels["interleaved"]["server_p50_over_raw_b1"] == pytest.approx(sum(ratios) / 2)
    assert all(
        r["raw_best_msgs_per_s"] > 0 and r["server_c32_batch8_msgs_per_s"] > 0 for r in rounds
    )
    two = levels["workers2_c32"]
    assert two["errors"] == 0 and two["ok"] == two["requests"] > 0


def test_load_generator_sends_batches_and_counts_http_errors(tiny_bundle, texts, tmp_path):
    from support.serving import Server

    server = Server(tiny_bundle, tmp_path / "serve.log", env={"KEFU_MAX_BATCH": "4"})
    try:
        server.wait_ready()
        fits = asyncio.run(
            generate_load(server.url, texts, concurrency=2, requests=6, max_seconds=20, messages=4)
        )
        too_many = asyncio.run(
            generate_load(server.url, texts, concurrency=2, requests=4, max_seconds=20, messages=5)
        )
    finally:
        server.stop()
    assert (fits["ok"], fits["errors"], fits["msgs_per_s"] > 0) == (6, 0, True)
    assert (too_many["ok"], too_many["error_kinds"]) == (0, {"HTTP 413": 4})
