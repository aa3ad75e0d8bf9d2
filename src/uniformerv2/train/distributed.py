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

__all__ = [
    "SyncBatchNorm3d",
    "convert_sync_batchnorm",
    "DistContext",
    "init_distributed",
    "wrap_model",
    "unwrap",
    "all_reduce_sum",
    "barrier",
    "cleanup",
]

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


class SyncBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d whose training statistics are computed over the batch of every process.

    Mean and biased variance come from the sums of x and x^2 over (N, T, H, W), all-reduced
    over ranks with a differentiable all-reduce, so the forward and the gradients equal those of
    one process holding the whole global batch (up to rounding); the running variance uses the
    unbiased global estimate, as ``nn.BatchNorm3d`` does. Unlike ``nn.SyncBatchNorm`` it also
    runs on CPU with gloo. Outside training, or without a process group of several ranks, it is
    plain ``BatchNorm3d``. Keys and tensors are those of ``BatchNorm3d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        import torch.distributed.nn.functional as dist_nn

        channels, dims = x.shape[1], [0, 2, 3, 4]
        x32 = x.float()
        local = torch.cat([x32.sum(dims), (x32 * x32).sum(dims), x32.new_tensor([x32.numel() // channels])])
        total = dist_nn.all_reduce(local)
        count = total[-1]
        mean = total[:channels] / count
        var = (total[channels : 2 * channels] / count - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1).clamp_min(1.0))
        shape = (1, channels, 1, 1, 1)
        y = (x32 - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        tracked = self.num_batches_tracked
        assert tracked is not None  # track_running_stats
        tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(tracked)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)  # type: ignore[union-attr]
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), factor)  # type: ignore[union-attr]


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm3d`` of ``model`` (the local MHRA's) by :class:`SyncBatchNorm3d`
    sharing its parameters and buffers, so an optimizer built before still holds them."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.BatchNorm3d:
                sync = SyncBatchNorm3d(
                    child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
                )
                sync.weight, sync.bias = child.weight, child.bias
                sync.running_mean, sync.running_var = child.running_mean, child.running_var
                sync.num_batches_tracked = child.num_batches_tracked
                sync.train(child.training)
                setattr(module, name, sync)
    return model


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
