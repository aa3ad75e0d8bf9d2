"""Training state on disk: ``last.pt`` at the end of every epoch and within epochs (every
``checkpoint_every_minutes`` or ``checkpoint_every_steps``), ``best.pt`` on a new best (official
§2.1, §4.6).

A state file is a ``torch.save`` dict that loads with ``torch.load(weights_only=True)``:

=================  ============================================================================
``model``          state dict of the unwrapped model
``optimizer``      AdamW state (moments and step counts)
``scaler``         GradScaler state
``epoch``          0-based index of the last epoch finished (-1 within the first epoch)
``next_epoch``     the epoch a resumed run continues in
``next_step``      the iteration of ``next_epoch`` it continues at (0: the start of the epoch)
``totals``         within an epoch: loss sum, top-1 and top-5 hits, clips and skipped videos of
                   its first ``next_step`` iterations over all processes (float64 tensor)
``best_top1``      best validation top-1 so far (%), -1.0 before the first validation
``best_epoch``     epoch of ``best_top1`` (-1 before)
``history``        the finished epochs' records (what ``metrics.jsonl`` holds) as a JSON string
``rng``            torch CPU (and CUDA) generator states and Python ``random`` state
``config``         the run's :class:`~uniformerv2.train.config.TrainConfig` as a JSON string
=================  ============================================================================

Files are written to a temporary name in the same directory and renamed, so a crash while saving
leaves the previous file intact and no partial file. Best rule: ``best.pt`` is replaced only when
validation top-1 is *strictly* higher than the best so far, so on a tie the earlier epoch stays
(the official code uses ``<=`` on the error, so a tie overwrites).
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import torch

from uniformerv2.atomic import atomic_torch_save

__all__ = ["LAST", "BEST", "rng_state", "set_rng_state", "save_state", "load_state", "find_resume"]

_logger = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"


def rng_state() -> dict[str, Any]:
    """Torch CPU/CUDA and Python ``random`` generator states (weights-only loadable)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _python_state_to_list(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state_to_list(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved (CUDA states only when CUDA is present)."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write a training state atomically (see the module docstring for the keys)."""
    return atomic_torch_save(state, path)


def load_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training state with ``torch.load(weights_only=True)`` (no code runs on load)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def find_resume(resume: str, output_dir: str | os.PathLike[str]) -> Path | None:
    """The state to resume from.

    Args:
        resume: ``"auto"`` (``output_dir/last.pt`` when it exists, else a fresh start), ``""``
            (always fresh) or a path to a state file.
        output_dir: the run directory.

    Raises:
        FileNotFoundError: an explicit path that does not exist.
    """
    if not resume:
        return None
    if resume == "auto":
        last = Path(output_dir) / LAST
        return last if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"resume checkpoint {path} does not exist")
    return path
