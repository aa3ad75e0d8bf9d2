"""Process groups for training under ``torchrun`` (one process per GPU, or CPU processes on gloo).

Single node, 8 GPUs::

    torchrun --standalone --nproc_per_node 8 -m uniformerv2 train --preset k400_b16_f8x224_from_k710 ...

Two nodes of 8 GPUs (run on each node, ``--node_rank`` 0 and 1; the endpoint is node 0)::

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 \\
        --rdzv_backend c10d --rdzv_endpoint node0.example:29500 --rdzv_id job42 \\
        -m uniformerv2 train --config run.yaml

Without ``WORLD_SIZE`` in the environment everything runs in one process with no process group.
The rank, world size and local rank come from :func:`uniformerv2.runtime.dist_env`.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from uniformerv2.runtime import dist_env, resolve_device

__all__ = ["DistContext", "init_distributed", "wrap_model", "unwrap", "all_reduce_sum", "barrier", "cleanup"]

_logger = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Where this process runs.

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process trains on.
        owns_group: this context created the process group (and destroys it in :func:`cleanup`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_primary(self) -> bool:
        """Rank 0: the only process that logs progress and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(preference: str, local_rank: int) -> torch.device:
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {preference!r}")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    device = resolve_device(f"cuda:{local_rank}")  # DeviceError when CUDA is missing
    torch.cuda.set_device(device)
    return device


def init_distributed(device: str = "auto", timeout_minutes: int = 60) -> DistContext:
    """Read the torchrun environment, pick the device and join the process group.

    NCCL is used on CUDA and gloo on CPU (and on platforms without NCCL, such as Windows).
    With ``WORLD_SIZE`` unset or 1 no group is created.
    """
    rank, world, local = dist_env()
    ctx = DistContext(rank, world, local, _pick_device(device, local))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if ctx.device.type == "cuda" and dist.is_nccl_available() else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
        ctx.owns_group = True
        _logger.info("rank %d/%d joined the %s group on %s", rank, world, backend, ctx.device)
    return ctx


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP-wrap ``model`` when several processes train it (``find_unused_parameters=False``).

    DDP only reduces parameters with ``requires_grad=True``, so a frozen backbone must be frozen
    *before* this call; every trainable parameter must then take part in each forward.
    """
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a float64 vector over all ranks (returned on CPU); identity for one process."""
    if not ctx.distributed:
        return values
    comm_device = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = values.to(comm_device, torch.float64)
    dist.all_reduce(tensor)
    return tensor.cpu()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if ctx.distributed:
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    """Destroy the process group this context created."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
        ctx.owns_group = False
