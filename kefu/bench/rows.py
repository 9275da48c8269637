"""The rows of the benchmark table, built once from a run's results (strings, "-" if missing).

Columns: part, measure, fp32, INT8, INT8 / fp32. Parts without a variant (training, the
PyTorch reference) use the fp32 column; batch scoring uses the column of the variant
`kefu score` ran (the bundle's default). `table.py` lays the rows out for a terminal or markdown.
"""

from __future__ import annotations

import re
from typing import Any

from kefu.bench.cells import Row, in_column, num, per_variant, texts_row, times
from kefu.bench.ratio_rows import ratio_rows
from kefu.bench.ratios import VARIANTS, best_just_before, divided, lookup
from kefu.serving.preview import cut
from kefu.serving.taxonomy import HEADS

ERROR_CHARS = 100  # longest error shown in a row, its "…" included
CELL_ERROR_CHARS = 80  # in one variant's column


def table_rows(results: dict[str, Any]) -> list[list[Row]]:
    """Sections of rows, in the order the table shows them; a failed part is one row."""
    builders = {
        "ort_raw": _ort_rows,
        "torch": _torch_rows,
        "server": _server_rows,
        "batch_scoring": _batch_rows,
        "training": _training_rows,
        "accuracy": _accuracy_rows,
        "flops": _flops_rows,
    }
    parts = results.get("parts", {})
    sections = []
    for name, build in builders.items():
        part = parts.get(name)
        if part is not None:
            failed = "error" in part
            sections.append(
                [Row(name, f"failed: {cut(str(part['error']), ERROR_CHARS)}")]
                if failed
                else build(part, results)
            )
    sections.append(ratio_rows(results))
    return sections


def _ort_rows(part: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    variants = part["variants"]
    rows = []
    sizes = sorted({int(name.split("_")[1]) for points in variants.values() for name in points})
    for size in sizes:
        key = f"batch_{size}"

        def split(variant: str, key: str = key) -> str:
            point = variants.get(variant, {}).get(key)
            if point is None:
                return "-"
            return f"{num(point['tokenise_ms_per_msg'])} + {num(point['model_ms_per_msg'])}"

        model_ms = {v: lookup(variants, v, key, "model_ms_per_msg") for v in VARIANTS}
        quotient = times(divided(model_ms["int8"], model_ms["fp32"]))
        rows.append(texts_row("raw ORT", f"batch {size}: ms/msg tokenise + model", split, quotient))
        throughput = {v: lookup(variants, v, key, "msgs_per_s") for v in VARIANTS}
        rows.append(per_variant("raw ORT", f"batch {size}: msgs/s", throughput, 0))
    p50 = {v: lookup(variants, v, "batch_1", "batch_latency", "p50_ms") for v in VARIANTS}
    rows.append(per_variant("raw ORT", "batch 1: p50 latency ms", p50))
    rows.append(per_variant("raw ORT", "model file MB", part.get("model_mb", {}), 1))
    return rows


def _torch_rows(part: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    rows = []
    for name in sorted((k for k in part if k.startswith("batch_")), key=lambda k: int(k[6:])):
        size, point = name[6:], part[name]
        rows.append(
            Row("PyTorch pipeline", f"batch {size}: ms/msg", num(point["total_ms_per_msg"]))
        )
        rows.append(Row("PyTorch pipeline", f"batch {size}: msgs/s", num(point["msgs_per_s"], 0)))
        ort = point.get("ort_same_batches", {})
        measure = f"batch {size}: ORT ms/msg, in turns on the same batches"
        rows.append(per_variant("PyTorch pipeline", measure, ort))
    return rows


def _server_rows(part: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    variants = part["variants"]
    failed = {v: run["error"] for v, run in variants.items() if "error" in run}
    rows = [
        Row("HTTP server", f"{v} failed: {cut(error, ERROR_CHARS)}") for v, error in failed.items()
    ]
    served = {v: run for v, run in variants.items() if v not in failed}

    def reference(variant: str) -> str:
        before = lookup(variants, variant, "raw_ort_just_before")
        return (
            "-"
            if not before
            else f"{num(before['b1_p50_ms'])} / {num(best_just_before(before), 0)}"
        )

    measure = "raw ORT just before: batch-1 p50 ms / best-batch msgs/s"
    rows.append(texts_row("HTTP server", measure, reference))
    names = {k for run in served.values() for k in run if isinstance(run[k], dict)}
    single = sorted((k for k in names if re.fullmatch(r"c\d+", k)), key=lambda k: int(k[1:]))
    batched = sorted(
        (k for k in names if re.fullmatch(r"c\d+_batch\d+", k)),
        key=lambda k: int(k[1:].split("_")[0]),
    )
    labels = {k: f"c={k[1:]}" for k in single}
    labels |= {
        k: f"c={k[1:].split('_')[0]}, {k.split('batch')[1]}-message requests" for k in batched
    }
    if "healthz_c32" in names:
        labels["healthz_c32"] = "GET /healthz c=32 (framework floor)"
    workers = sorted(k for k in names if re.fullmatch(r"workers\d+_c32", k))
    labels |= {k: f"--workers {k[7:].split('_')[0]}, c=32" for k in workers}
    for level in [*single, *batched, "healthz_c32", *workers]:
        if level not in labels:
            continue

        def spread(variant: str, level: str = level) -> str:
            latency = lookup(served, variant, level, "latency") or {}
            return " / ".join(num(latency.get(p)) for p in ("p50_ms", "p95_ms", "p99_ms"))

        p50 = {v: lookup(served, v, level, "latency", "p50_ms") for v in VARIANTS}
        quotient = times(divided(p50["int8"], p50["fp32"]))
        rows.append(
            texts_row("HTTP server", f"{labels[level]}: p50 / p95 / p99 ms", spread, quotient)
        )
        rate = "requests/s" if level == "healthz_c32" else "msgs/s"
        key = "throughput_rps" if level == "healthz_c32" else "msgs_per_s"
        throughput = {
            v: lookup(served, v, level, key) or lookup(served, v, level, "throughput_rps")
            for v in VARIANTS
        }
        rows.append(per_variant("HTTP server", f"{labels[level]}: {rate}", throughput, 0))

    for level in ("c32", "c32_batch8", "healthz_c32", *workers):
        if level not in names:
            continue

        def cpu_cost(variant: str, level: str = level) -> str:
            point = lookup(served, variant, level) or {}
            server, client = (
                point.get("server_cpu_ms_per_request"),
                point.get("client_cpu_ms_per_request"),
            )
            return "-" if not point else f"{num(server)} / {num(client)}"

        measure = f"{labels[level]}: CPU ms per request, server / load generator"
        rows.append(texts_row("HTTP server", measure, cpu_cost))

    overload = {v: lookup(served, v, "overload_2x") for v in VARIANTS}
    if any(overload.values()):

        def kept(variant: str) -> str:
            level = overload[variant] or {}
            share = level.get("served_over_c32")
            return "-" if share is None else f"{num(level['served_msgs_per_s'], 0)} ({share:.0%})"

        def refusals(variant: str) -> str:
            level = overload[variant] or {}
            refused = level.get("refused_latency") or {}
            if not level:
                return "-"
            return f"{level['refused_503']}: {num(refused.get('p99_ms'))} / {num(refused.get('max_ms'))}"

        measure = "2x overload: msgs/s served (share of c=32)"
        rows.append(texts_row("HTTP server", measure, kept))
        measure = "2x overload: 503s: p99 / max ms"
        rows.append(texts_row("HTTP server", measure, refusals))

    def errors(variant: str) -> str:
        run = served.get(variant)
        if run is None:
            return "-"
        counted = [run[level] for level in [*labels, "interleaved"] if level in run]
        return f"{sum(r['errors'] for r in counted)} / {sum(r['requests'] for r in counted)}"

    rows.append(texts_row("HTTP server", "errors / requests", errors))
    memory = {v: lookup(served, v, "server_rss_mb") for v in VARIANTS}
    rows.append(per_variant("HTTP server", "server RSS MB after load", memory, 0))
    return rows


def _batch_rows(part: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    variant = results.get("bundle", {}).get("default_variant", "fp32")
    rows = []
    for engine, run in part["engines"].items():
        label = f"{engine} engine, {run.get('rows', part['rows']):,} rows"
        if "reduced_from" in run:
            label += f" (time budget; of {run['reduced_from']:,})"
        if "stopped_after_rows" in run:
            label += f" (time limit: stopped after {run['stopped_after_rows']:,})"
        if "skipped" in run:
            value = f"skipped: {run['skipped']}"
        elif "error" in run:
            value = f"failed: {cut(run['error'], CELL_ERROR_CHARS)}"
        else:
            label += ": rows/s, peak PSS"
            value = f"{num(run['rows_per_s'], 0)} rows/s, {num(run['peak_pss_mb'], 0)} MB"
        rows.append(Row("batch scoring", label, *in_column(variant, value)))
    return rows


def _training_rows(part: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    per_1000 = f"s per 1,000 examples (batch {part['batch_size']}, {part['steps']} steps)"
    epoch = f"s per epoch of {part['epoch_rows']:,} rows (estimate)"
    return [
        Row("training", per_1000, num(part["seconds_per_1000"], 1)),
        Row("training", epoch, num(part["epoch_seconds_estimate"], 0)),
    ]


def _accuracy_rows(part: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    rows = []
    for head in HEADS:
        f1 = {v: lookup(part, "variants", v, head, "macro_f1") for v in VARIANTS}
        delta = lookup(part, "int8_minus_fp32_points", head)
        measure = f"{head} macro-F1 ({part['rows']} test rows)"
        points = "-" if delta is None else f"{delta:+.1f} pt"
        rows.append(Row("accuracy", measure, num(f1["fp32"], 3), num(f1["int8"], 3), points))
    return rows


def _flops_rows(part: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    best = {
        variant: max(points.values(), key=lambda point: point["gflops"])
        for variant, points in part["achieved"].items()
        if points
    }

    def achieved(variant: str) -> str:
        if variant not in best:
            return "-"
        return f"{num(best[variant]['gflops'], 1)} ({best[variant]['fraction_of_peak']:.0%})"

    quotient = times(divided(lookup(best, "int8", "gflops"), lookup(best, "fp32", "gflops")))
    per_message = f"GFLOP per message (mean {part['mean_tokens']:.0f} tokens)"
    return [
        Row("compute", per_message, num(part["gflop_per_message"], 3)),
        Row("compute", "machine peak GFLOP/s (fp32 numpy matmul)", num(part["peak_gflops"], 1)),
        texts_row("compute", "achieved GFLOP/s, best batch (share of peak)", achieved, quotient),
    ]
