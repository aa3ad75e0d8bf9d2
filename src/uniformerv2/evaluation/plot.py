"""The confusion matrix as a picture (``uniformerv2 eval --plot``)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uniformerv2.atomic import atomic_savefig
from uniformerv2.errors import UniFormerV2Error

__all__ = ["require_matplotlib", "plot_confusion"]

#: Above this many classes the axes carry no class names (they would not be readable).
MAX_NAMED = 40
#: Up to this many classes every cell shows its count.
MAX_ANNOTATED = 15


def require_matplotlib() -> None:
    """Raise a clear error when matplotlib is missing (checked before an evaluation starts)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UniFormerV2Error('the confusion-matrix plot needs matplotlib: pip install "uniformerv2[plot]"')


def plot_confusion(
    confusion: np.ndarray, labels: Sequence[str], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Save the row-normalised confusion matrix (colour = share of a true class's videos).

    Only classes that occur in the list or among the predictions are drawn. Rows are true
    classes, columns predicted ones; the format follows the suffix (``.png``, ``.svg``, ``.pdf``).

    Args:
        confusion: (C, C) counts, row = true class.
        labels: the C class names.
        path: output file, written atomically.
        title: figure title.
    """
    from matplotlib.figure import Figure  # no pyplot: the global backend stays the user's

    shown = np.flatnonzero((confusion.sum(axis=0) + confusion.sum(axis=1)) > 0)
    if shown.size == 0:
        shown = np.arange(len(labels))
    counts = confusion[np.ix_(shown, shown)]
    totals = confusion[shown].sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    n = len(shown)
    side = min(4.0 + 0.3 * n, 24.0)
    fig = Figure(figsize=(side + 1.5, side))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= MAX_NAMED:
        names = [labels[int(i)] for i in shown]
        ax.set_xticks(range(n), names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
    if n <= MAX_ANNOTATED:
        for (row, col), value in np.ndenumerate(counts):
            if value:
                colour = "white" if share[row, col] > 0.5 else "black"
                ax.text(col, row, str(value), ha="center", va="center", fontsize=8, color=colour)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "confusion matrix")
    fig.tight_layout()
    return atomic_savefig(fig, path, dpi=100)
