"""Markdown pieces every evaluation text is built from: a score, a gain in points, a table.

Shared by report.md, the model card and the command line's summary lines, so a score reads the
same (digits, a dash when undefined) wherever it is shown.
"""

from __future__ import annotations

from typing import Any


def fmt(value: Any, digits: int = 3) -> str:
    """A score for a table: fixed digits, an em dash when undefined."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def points(value: float | None, reference: float | None) -> str:
    """Difference in F1 points (x100), signed: how much `value` is above `reference`."""
    if value is None or reference is None:
        return "—"
    return f"{100 * (value - reference):+.1f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
