"""The ratio section of the benchmark table: the quotients `ratios.py` computed, as text.

The two headline server ratios come with the same ratios taken the single-shot way beside
them (the long level against the raw run before it), so a reader sees how far they differ.
"""

from __future__ import annotations

from typing import Any

from kefu.bench.cells import Row, in_column, times


def ratio_rows(results: dict[str, Any]) -> list[Row]:
    ratios = results.get("ratios", {})
    scoring = dict(ratios.get("batch_scoring_over_raw_best", {}))
    variant = scoring.pop("variant", "fp32")
    engines = " / ".join(f"{engine} {times(value)}" for engine, value in scoring.items()) or "-"
    ours = ratios.get("ours_over_pytorch", {})
    int8 = ratios.get("int8_over_fp32", {})

    def pair(name: str) -> tuple[str, str]:
        values = ratios.get(name, {})
        return times(values.get("fp32")), times(values.get("int8"))

    def versus_torch(size: int) -> tuple[str, str]:
        return times(ours.get(f"fp32_batch_{size}")), times(ours.get(f"int8_batch_{size}"))

    def single_shot(name: str) -> tuple[str, str]:
        values = ratios.get("single_shot", {}).get(name, {})
        return times(values.get("fp32")), times(values.get("int8"))

    model_time = " / ".join(times(int8.get(f"model_ms_batch_{s}")) for s in (1, 8, 32))
    return [
        Row("ratio", "server p50 (c=1) / raw ORT batch-1 p50", *pair("server_p50_over_raw_b1")),
        Row(
            "ratio",
            "  the same from the c=1 level and the raw ORT just before it",
            *single_shot("server_p50_over_raw_b1"),
        ),
        Row(
            "ratio", "server msgs/s (c=32) / raw ORT best batch", *pair("server_c32_over_raw_best")
        ),
        Row(
            "ratio",
            "server msgs/s (c=32, 8-message requests) / raw ORT best batch",
            *pair("server_c32_batch8_over_raw_best"),
        ),
        Row(
            "ratio",
            "  the same from the c=32 8-message level and the raw ORT just before it",
            *single_shot("server_c32_batch8_over_raw_best"),
        ),
        Row(
            "ratio",
            "server msgs/s (c=32): --workers 2 / --workers 1",
            *pair("server_c32_workers2_over_workers1"),
        ),
        Row("ratio", "batch scoring rows/s / raw ORT best batch", *in_column(variant, engines)),
        Row("ratio", "ours / PyTorch pipeline, time per msg, batch 1", *versus_torch(1)),
        Row("ratio", "ours / PyTorch pipeline, time per msg, batch 32", *versus_torch(32)),
        Row("ratio", "INT8 / fp32: model time b1 / b8 / b32", "-", "-", model_time),
    ]
