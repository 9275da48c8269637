"""Charts as base64 PNG strings, drawn headless (Agg) so the HTML needs no network or JS.

Chinese labels need a CJK font; without one matplotlib draws empty boxes ("tofu"). `cjk_font()`
finds one among the usual families (Noto CJK, WenQuanYi, Source Han, ...), registering font
files that matplotlib's cache has not seen yet; when there is none, callers label with ASCII ids.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402  (the backend must be chosen first)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

DPI = 100
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "AR PL UMing CN",
    "Droid Sans Fallback",
)
CJK_FILE_HINTS = (
    "notosanscjk",
    "notoserifcjk",
    "wqy",
    "sourcehan",
    "droidsansfallback",
    "simhei",
    "msyh",
    "uming",
)
# A label column of free text (hand-edited, or another tool's) can hold thousands of labels:
# as many bars made a chart of 100,000 pixels and a page of 20 MB. The tables list them all.
MAX_BARS = 40
PALETTE = ("#2f6db5", "#e07b39", "#3a9d5d", "#c0392b", "#8e6bbf", "#7f8c8d", "#d4a017")


@functools.cache
def cjk_font() -> str | None:
    """Family name of an installed font with Chinese glyphs, or None."""
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:
            return family
    for path in font_manager.findSystemFonts():
        name = Path(path).name.lower().replace("-", "").replace("_", "")
        if any(hint in name for hint in CJK_FILE_HINTS):
            try:
                font_manager.fontManager.addfont(path)
                return font_manager.FontProperties(fname=path).get_name()
            except (OSError, RuntimeError, ValueError):
                continue
    return None


def _style() -> Any:  # an rcParams mapping; matplotlib types its keys as literals
    family = cjk_font()
    fonts = [family, "DejaVu Sans"] if family else ["DejaVu Sans"]
    return {
        "font.family": "sans-serif",
        "font.sans-serif": fonts,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "text.parse_math": False,  # labels come from the data: "$...$" is text, not TeX
    }


def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def bar_chart(
    labels: Sequence[str], values: Sequence[float], title: str, xlabel: str = "messages"
) -> str:
    """Horizontal bars, first label on top; returns a base64 PNG. Past `MAX_BARS` labels, the
    last bar sums the rest (callers give the labels most first)."""
    if len(labels) > MAX_BARS:
        kept = MAX_BARS - 1
        labels = [*labels[:kept], f"{len(labels) - kept:,} others"]
        values = [*values[:kept], sum(values[kept:])]
    with matplotlib.rc_context(_style()):
        fig, ax = plt.subplots(figsize=(7.5, max(2.2, 0.32 * len(labels) + 1.0)))
        positions = range(len(labels))
        ax.barh(list(positions), list(values), color=PALETTE[0])
        ax.set_yticks(list(positions), list(labels), fontsize=9)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
        top = max(values, default=0)
        for y, value in zip(positions, values, strict=True):
            ax.text(value + top * 0.01, y, f"{value:,.0f}", va="center", fontsize=8)
        return _png(fig)


def line_chart(
    periods: Sequence[date],
    series: Mapping[str, Sequence[float]],
    title: str,
    ylabel: str,
    percent: bool = False,
) -> str:
    """One line per series over the periods; `percent` formats the y axis as 0-100 %."""
    with matplotlib.rc_context(_style()):
        fig, ax = plt.subplots(figsize=(8.5, 3.4))
        x: Any = mdates.date2num(list(periods))
        for i, (name, values) in enumerate(series.items()):
            ax.plot(
                x,
                list(values),
                marker="o",
                markersize=3,
                label=name,
                color=PALETTE[i % len(PALETTE)],
            )
        ax.set_title(title, loc="left")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        fig.autofmt_xdate()
        if len(series) > 1:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="y", alpha=0.3)
        return _png(fig)
