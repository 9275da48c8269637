"""PNG figures of a report: a confusion matrix and a reliability diagram per head.

Matplotlib runs headless (Agg backend, chosen before pyplot is imported). Axis labels are label
ids, which are ASCII, so the figures need no CJK font on the machine that draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from kefu.training.calibration_metrics import ECE_BINS, reliability_bins  # noqa: E402

DPI = 110


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], title: str, path: Path) -> Path:
    """Rows gold, columns predicted; colour is the row share (recall), cells show counts."""
    counts = np.asarray(matrix, dtype=np.int64)
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
    size = max(4.0, 0.42 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    for (row, col), count in np.ndenumerate(counts):
        if count:
            colour = "white" if shares[row, col] > 0.6 else "black"
            ax.text(col, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of gold row")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_reliability(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    path: Path,
    n_bins: int = ECE_BINS,
) -> Path:
    """Accuracy against mean confidence per bin, one line per probability set.

    `curves` maps a legend name (e.g. "calibrated") to (probs (n, k), gold (n,) indices).
    The lower panel shows how many rows each bin holds, so empty-looking tails are not misread.
    """
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    width = 1.0 / n_bins
    for offset, (name, (probs, gold)) in enumerate(curves.items()):
        bins = reliability_bins(probs, gold, n_bins)
        filled = bins["count"] > 0
        top.plot(bins["confidence"][filled], bins["accuracy"][filled], marker="o", label=name)
        centres = bins["edges"][:-1] + width * (0.25 + 0.5 * (offset % 2))
        bottom.bar(centres, bins["count"], width=width / 2, label=name)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_xlabel(f"confidence ({n_bins} bins)")
    bottom.set_ylabel("rows")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
