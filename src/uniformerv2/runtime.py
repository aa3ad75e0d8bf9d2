"""Where the code runs: the torchrun environment, the device, a barrier and mixed precision.

One low-level module shared by inference and training, so that the device is chosen, checked and
named in errors by one rule, and autocast has one convention.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from uniformerv2.errors import DeviceError

__all__ = [
    "AMP_DTYPES",
    "BARRIER_TIMEOUT",
    "autocast",
    "amp_dtype",
    "barrier",
    "dist_env",
    "process_group",
    "resolve_device",
]

#: Names accepted for mixed precision, and the autocast dtype of each.
AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}

#: How long a rank waits at a barrier for the slowest rank (batch jobs can run for days).
BARRIER_TIMEOUT = datetime.timedelta(hours=72)

_SUPPORTED = ("cpu", "cuda", "mps", "xpu")


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) when unset."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    backend = getattr(torch, kind, None)
    return backend is not None and backend.is_available()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a :class:`torch.device`, checked to exist on this machine.

    None picks cuda, then mps, then cpu. Under torchrun (``LOCAL_RANK`` set) a bare ``cuda``, given
    or picked, means ``cuda:LOCAL_RANK``, so every rank gets its own GPU.

    Raises:
        DeviceError: an unknown device name, or one this machine does not have (one line).
    """
    if device is None:
        kind = next((k for k in ("cuda", "mps") if _available(k)), "cpu")
        target = torch.device(kind)
    else:
        try:
            target = torch.device(device)
        except (RuntimeError, TypeError):
            raise DeviceError(f"unknown device {str(device)!r}: use cpu, cuda, cuda:N, mps or xpu") from None
        if target.type not in _SUPPORTED:
            raise DeviceError(f"device {str(device)!r} is not supported: use cpu, cuda, cuda:N, mps or xpu")
        if not _available(target.type):
            raise DeviceError(f"device {str(device)!r} is not available on this machine ({_why(target.type)})")
    if target.type == "cuda" and target.index is None and "LOCAL_RANK" in os.environ:
        target = torch.device("cuda", dist_env()[2])
    if target.type == "cuda" and target.index is not None and target.index >= torch.cuda.device_count():
        raise DeviceError(f"device {str(target)!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return target


def _why(kind: str) -> str:
    if kind == "cuda":
        build = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        return f"{build}; use --device cpu"
    return f"PyTorch finds no {kind} device; use --device cpu"


def amp_dtype(amp: torch.dtype | str | None) -> torch.dtype | None:
    """The autocast dtype of ``amp``: ``"bf16"``/``"fp16"`` (or the torch dtypes); None for ``None``/``"none"``."""
    if amp is None or amp == "none":
        return None
    dtype = AMP_DTYPES.get(amp) if isinstance(amp, str) else amp
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"mixed precision must be bf16 or fp16, got {amp!r}")
    return dtype


def autocast(device: torch.device | str, amp: torch.dtype | str | None) -> contextlib.AbstractContextManager[Any]:
    """Autocast on ``device`` for ``amp`` (see :func:`amp_dtype`), or a no-op when ``amp`` is None/"none"."""
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


@contextlib.contextmanager
def process_group(world_size: int) -> Iterator[None]:
    """A gloo process group for the duration of the block when ``world_size`` > 1 and none exists yet."""
    own = world_size > 1 and not dist.is_initialized()
    if own:
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        if own:
            dist.destroy_process_group()


def barrier(world_size: int) -> None:
    """Wait for every rank (no-op for one process); joins a gloo group for the wait when none exists."""
    if world_size <= 1:
        return
    with process_group(world_size):
        dist.barrier()
