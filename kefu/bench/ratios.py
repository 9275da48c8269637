"""The ratios that matter, computed from one run's results (so machine noise mostly cancels).

Every ratio is None when a part it needs did not run or failed; nothing here raises on a
missing part. On a shared machine the load drifts during a run, so the raw ORT reference of a
server or batch-scoring ratio is the short raw measurement taken just before that run
(`raw_ort_just_before`: batch-1 p50, batch-32 msgs/s), falling back to the raw ORT part.
The two headline server ratios (p50 at c=1, and c=32 with 8-message requests) are the median
over rounds in which raw ORT and the server take turns, seconds apart (`interleaved.py`); the
same ratios from the one long level and the raw measurement before it are kept under
`single_shot` (they swing with the machine between minutes).
Definitions (per model variant where it applies):
- server_p50_over_raw_b1: server p50 latency at concurrency 1 / raw ORT batch-1 p50 (1.0 =
  HTTP, JSON, routing and the event loop cost nothing);
- server_c32_over_raw_best: server throughput at concurrency 32 (single-message requests) /
  raw ORT best-batch msgs/s (the faster of batch 8 and 32 just before, else the raw part's best);
- server_c32_batch8_over_raw_best: server msgs/s at concurrency 32 with 8-message requests /
  the same raw ORT best batch (what survives of the model's throughput when requests carry
  several messages, as chat back-ends batching a few conversations send them);
- server_c32_workers2_over_workers1: `kefu serve --workers 2` / one worker, c=32 throughput;
- batch_scoring_over_raw_best: `kefu score` rows/s (wall clock) / the same raw ORT throughput
  for the bundle's default variant (what `kefu score` uses);
- ours_over_pytorch: ORT ms per message / PyTorch pipeline ms per message, batch 1 and 32,
  both timed in turns on the same batches in the PyTorch part (tokenisation included on both
  sides; below 1 = ours is faster);
- int8_over_fp32: INT8 / fp32 for model time per message, server p50 and throughput, file size;
  macro-F1 difference in points per head.
"""

from __future__ import annotations

from typing import Any

from kefu.serving.taxonomy import HEADS

VARIANTS = ("fp32", "int8")


def lookup(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def divided(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0 (a part that did not run)."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def best_just_before(point: dict[str, Any] | None) -> float | None:
    """The faster of batch 8 and batch 32 in a `raw_ort_just_before` measurement."""
    rates = [(point or {}).get(f"b{size}_msgs_per_s") for size in (8, 32)]
    return max((rate for rate in rates if rate), default=None)


def best_raw(results: dict[str, Any], variant: str) -> float | None:
    points = lookup(results, "parts", "ort_raw", "variants", variant)
    if not isinstance(points, dict) or not points:
        return None
    return max(point["msgs_per_s"] for point in points.values())


def compute_ratios(results: dict[str, Any], default_variant: str) -> dict[str, Any]:
    ratios: dict[str, Any] = {
        "server_p50_over_raw_b1": {},
        "server_c32_over_raw_best": {},
        "server_c32_batch8_over_raw_best": {},
        "server_c32_workers2_over_workers1": {},
        "ours_over_pytorch": {},
        "int8_over_fp32": {},
        "single_shot": {"server_p50_over_raw_b1": {}, "server_c32_batch8_over_raw_best": {}},
    }
    for variant in VARIANTS:
        # raw ORT timed just before the server ran, else the raw ORT part
        before = lookup(results, "parts", "server", "variants", variant, "raw_ort_just_before")
        raw_b1 = lookup(before or {}, "b1_p50_ms") or lookup(
            results, "parts", "ort_raw", "variants", variant, "batch_1", "batch_latency", "p50_ms"
        )
        raw_best = best_just_before(before) or best_raw(results, variant)
        server_p50 = lookup(
            results, "parts", "server", "variants", variant, "c1", "latency", "p50_ms"
        )
        server = lookup(results, "parts", "server", "variants", variant) or {}
        single_shot = ratios["single_shot"]
        single_shot["server_p50_over_raw_b1"][variant] = divided(server_p50, raw_b1)
        ratios["server_p50_over_raw_b1"][variant] = lookup(
            server, "interleaved", "server_p50_over_raw_b1"
        ) or divided(server_p50, raw_b1)
        server_rps = lookup(
            results, "parts", "server", "variants", variant, "c32", "throughput_rps"
        )
        ratios["server_c32_over_raw_best"][variant] = divided(server_rps, raw_best)
        batch8_msgs = lookup(server, "c32_batch8", "msgs_per_s")
        single_shot["server_c32_batch8_over_raw_best"][variant] = divided(batch8_msgs, raw_best)
        ratios["server_c32_batch8_over_raw_best"][variant] = lookup(
            server, "interleaved", "server_c32_batch8_over_raw_best"
        ) or divided(batch8_msgs, raw_best)
        ratios["server_c32_workers2_over_workers1"][variant] = divided(
            lookup(server, "workers2_c32", "throughput_rps"), server_rps
        )
        for size in (1, 32):
            # ORT timed in turns with the pipeline (same batches, same load)
            point = lookup(results, "parts", "torch", f"batch_{size}") or {}
            ours = lookup(point, "ort_same_batches", variant)
            ratios["ours_over_pytorch"][f"{variant}_batch_{size}"] = divided(
                ours, point.get("total_ms_per_msg")
            )
    engines = lookup(results, "parts", "batch_scoring", "engines") or {}
    ratios["batch_scoring_over_raw_best"] = {
        engine: divided(
            run.get("rows_per_s"),
            best_just_before(run.get("raw_ort_just_before")) or best_raw(results, default_variant),
        )
        for engine, run in engines.items()
    }
    ratios["batch_scoring_over_raw_best"]["variant"] = default_variant
    ratios["int8_over_fp32"] = int8_over_fp32(results)
    return ratios


def int8_over_fp32(results: dict[str, Any]) -> dict[str, Any]:
    def both(part: str, *path: str) -> float | None:
        fp32 = lookup(results, "parts", part, "variants", "fp32", *path)
        int8 = lookup(results, "parts", part, "variants", "int8", *path)
        return divided(int8, fp32)

    out: dict[str, Any] = {}
    for size in (1, 8, 32):
        out[f"model_ms_batch_{size}"] = both("ort_raw", f"batch_{size}", "model_ms_per_msg")
    out["model_mb"] = divided(
        lookup(results, "parts", "ort_raw", "model_mb", "int8"),
        lookup(results, "parts", "ort_raw", "model_mb", "fp32"),
    )
    out["server_p50_c1"] = both("server", "c1", "latency", "p50_ms")
    out["server_rps_c32"] = both("server", "c32", "throughput_rps")
    drops = lookup(results, "parts", "accuracy", "int8_minus_fp32_points") or {}
    out["macro_f1_points"] = {head: drops.get(head) for head in HEADS}
    return out
