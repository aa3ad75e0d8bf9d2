"""Per-epoch metrics as JSON lines and a loss / accuracy plot (``metrics.jsonl``, ``curves.png``).

Both files are rewritten whole each epoch through a temporary file and a rename, so a reader never
sees a half-written file and a resumed run does not duplicate epochs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uniformerv2.atomic import atomic_savefig, atomic_write_text

__all__ = ["METRICS", "CURVES", "read_metrics", "write_metrics", "plot_curves"]

METRICS = "metrics.jsonl"
CURVES = "curves.png"


def read_metrics(path: str | os.PathLike[str], before_epoch: int | None = None) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` (empty when missing), only epochs < ``before_epoch`` if given."""
    path = Path(path)
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if before_epoch is None or r["epoch"] < before_epoch]


def write_metrics(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per line, atomically."""
    return atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def plot_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Training and validation loss (left) and top-1 (right) against epoch, saved atomically as PNG.

    Records carry ``epoch`` (0-based) and ``train_loss``/``train_top1``, plus ``val_loss``/
    ``val_top1`` on validated epochs. Needs matplotlib (the ``plot`` extra); imported here only.
    """
    from matplotlib.figure import Figure  # no pyplot: the global backend stays the user's

    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for split, style in (("train", "-o"), ("val", "-s")):
        rows = [r for r in records if f"{split}_loss" in r]
        epochs = [r["epoch"] + 1 for r in rows]
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in rows], style, label=split)
        ax_acc.plot(epochs, [r[f"{split}_top1"] for r in rows], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 (%)", title="top-1 accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return atomic_savefig(fig, path, dpi=100)
