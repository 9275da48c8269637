"""One cell of the benchmark table as text: numbers, quotients, and rows built from them.

Shared by the part rows (`rows.py`) and the ratio rows (`ratio_rows.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kefu.bench.ratios import divided

COLUMNS = ("part", "measure", "fp32", "INT8", "INT8 / fp32")


@dataclass
class Row:
    part: str
    measure: str
    fp32: str = "-"
    int8: str = "-"
    ratio: str = "-"

    def cells(self) -> list[str]:
        return [self.part, self.measure, self.fp32, self.int8, self.ratio]


def num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def per_variant(part: str, measure: str, values: dict[str, Any], digits: int = 2) -> Row:
    """A numeric row with the INT8 / fp32 quotient in the last column."""
    fp32, int8 = values.get("fp32"), values.get("int8")
    return Row(part, measure, num(fp32, digits), num(int8, digits), times(divided(int8, fp32)))


def texts_row(part: str, measure: str, cell: Callable[[str], str], ratio: str = "-") -> Row:
    """A row whose fp32 and INT8 cells are preformatted text."""
    return Row(part, measure, cell("fp32"), cell("int8"), ratio)


def in_column(variant: str, value: str) -> tuple[str, str]:
    """(fp32 cell, INT8 cell) with `value` under `variant` only."""
    return (value if variant == "fp32" else "-", value if variant == "int8" else "-")
