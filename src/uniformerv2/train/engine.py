"""One training epoch, validation and the multi-view test (official behaviour §4.2, §4.6, §3.4).

Metrics are summed over ranks (loss x samples, top-1/top-5 hits, samples), so the numbers are
exact averages over every clip seen by every process. Accuracies are in percent.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from uniformerv2.errors import UniFormerV2Error
from uniformerv2.runtime import autocast
from uniformerv2.train.config import OptimConfig
from uniformerv2.train.data import checked_batches
from uniformerv2.train.distributed import DistContext, all_reduce_sum, unwrap
from uniformerv2.train.optim import lr_at, set_lr

__all__ = [
    "NonFiniteLossError",
    "resolve_amp",
    "make_scaler",
    "step_seed",
    "train_one_epoch",
    "evaluate",
    "test_multiview",
]

_logger = logging.getLogger(__name__)


class NonFiniteLossError(UniFormerV2Error, FloatingPointError):
    """The training loss became NaN or infinite (official ``check_nan_losses``)."""


def resolve_amp(amp: str, device: torch.device) -> str:
    """The autocast mode actually used: fp16 needs CUDA, so on CPU it becomes "none" (bf16 stays)."""
    if amp == "fp16" and device.type != "cuda":
        _logger.info("fp16 autocast needs CUDA; training in fp32 on %s (set optim.amp=bf16 for CPU autocast)", device)
        return "none"
    return amp


def make_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler:
    """GradScaler (initial scale 2^16, as timm's NativeScaler) enabled only for fp16 on CUDA."""
    return torch.amp.GradScaler("cuda", enabled=amp == "fp16" and device.type == "cuda")


def _hits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Top-1 and top-k hits (k = min(5, classes)) of a batch."""
    k = min(5, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices
    match = top.eq(labels[:, None])
    return float(match[:, 0].sum()), float(match.any(dim=-1).sum())


def _summary(totals: torch.Tensor) -> dict[str, float]:
    """(loss_sum, top1_hits, top5_hits, count) -> averages in percent."""
    loss_sum, hit1, hit5, count = totals.tolist()[:4]
    n = max(count, 1.0)
    return {"loss": loss_sum / n, "top1": 100.0 * hit1 / n, "top5": 100.0 * hit5 / n, "count": int(count)}


def _bar(loader: DataLoader, ctx: DistContext, progress: bool, desc: str, **kwargs: Any) -> tqdm:
    """The loader's checked batches (see :func:`checked_batches`) behind a tqdm bar on rank 0."""
    kwargs.setdefault("total", len(loader))
    disable = not (progress and ctx.is_primary)
    return tqdm(checked_batches(loader), desc=desc, disable=disable, leave=False, dynamic_ncols=True, **kwargs)


def _optimizer_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, clip_grad: float
) -> None:
    """Unscale, clip the global grad norm, step and update the scaler (timm ``NativeScaler``, §4.2)."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params:
        return
    if clip_grad > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, clip_grad)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def step_seed(seed: int, rank: int, epoch: int, iteration: int) -> int:
    """Seed of the dropout and drop-path draws of one optimizer step of one process.

    The draws of a step depend only on (seed, rank, epoch, iteration), never on what ran before,
    so a run resumed at any step draws what the uninterrupted run drew, and every DDP rank draws
    its own masks (the data augmentation is seeded per (seed, epoch, video) instead, see
    :class:`uniformerv2.train.data.VideoListDataset`).
    """
    return random.Random(f"{seed}:{rank}:{epoch}:{iteration}").getrandbits(63)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    optim: OptimConfig,
    epoch: int,
    ctx: DistContext,
    *,
    amp: str = "none",
    progress: bool = True,
    seed: int | None = None,
    start: int = 0,
    carry: torch.Tensor | None = None,
    after_step: Callable[[int, torch.Tensor], None] | None = None,
) -> dict[str, float]:
    """Train one epoch (official ``train_epoch``), or its rest from iteration ``start``.

    Per iteration: lr = :func:`lr_at` (epoch + i / iterations) written to every group at the
    start of each accumulation window; forward under autocast; cross-entropy (no smoothing);
    scaled backward (DDP gradient sync only on the window's last micro-batch); then unscale, clip
    at ``optim.clip_grad`` and step.

    Args:
        model: the (possibly DDP-wrapped) model; inputs (B, 3, T, S, S) -> logits (B, C).
        loader: yields :class:`uniformerv2.train.data.Batch`, from iteration ``start`` on.
        optimizer: from :func:`uniformerv2.train.optim.build_optimizer`.
        scaler: from :func:`make_scaler`.
        optim: schedule, clipping and accumulation settings.
        epoch: 0-based epoch index.
        ctx: distributed context (device, rank).
        amp: "fp16", "bf16" or "none" (see :func:`resolve_amp`).
        progress: tqdm bar on rank 0, showing the running loss and the lr.
        seed: when given, the global torch generator is re-seeded with :func:`step_seed` at the
            start of every accumulation window.
        start: iterations of this epoch already done (the loader skips them).
        carry: this process's totals (loss_sum, top1_hits, top5_hits, clips, skipped) of the
            iterations before ``start``.
        after_step: called as ``after_step(next_iteration, totals)`` after every optimizer step,
            with this process's totals so far (to log the step or save a checkpoint).

    Returns:
        ``loss``, ``top1``, ``top5`` (over all ranks and clips), ``count`` clips, ``skipped``
        videos, the last ``lr`` and ``seconds``.

    Raises:
        NonFiniteLossError: the loss is NaN or infinite (official ``check_nan_losses``).
        VideoLoadError: a video failed to load (without ``skip_bad_videos``).
        WorkerError: a data-loader worker died.
    """
    model.train()
    began = time.perf_counter()
    iters = start + len(loader)
    totals = torch.zeros(5, dtype=torch.float64) if carry is None else carry.clone()  # see ``carry``
    lr = lr_at(epoch + start / iters, optim)
    optimizer.zero_grad(set_to_none=True)
    bar = _bar(loader, ctx, progress, f"epoch {epoch + 1}", total=iters, initial=start)
    for i, batch in enumerate(bar, start=start):
        if i % optim.accum_steps == 0:
            lr = lr_at(epoch + i / iters, optim)
            set_lr(optimizer, lr)
            if seed is not None:
                torch.manual_seed(step_seed(seed, ctx.rank, epoch, i))
        last = (i + 1) % optim.accum_steps == 0 or i + 1 == iters
        totals[4] += batch.skipped
        if batch.inputs.shape[0] == 0:
            if ctx.distributed:
                raise RuntimeError(
                    "every video of a batch failed to decode; with several processes this would stall the others"
                )
            _logger.warning("epoch %d iteration %d: every video of the batch failed to decode; batch skipped", epoch, i)
        else:
            totals[:4] += _train_step(model, batch, scaler, optim.accum_steps, last, ctx.device, amp, (epoch, i))
        # the bar redraws at most every tqdm mininterval; the epoch's last step always shows its totals
        postfix = {"loss": f"{totals[0] / max(float(totals[3]), 1.0):.4f}", "lr": f"{lr:.3g}"}
        bar.set_postfix(postfix, refresh=i + 1 == iters)
        if last:
            _optimizer_step(model, optimizer, scaler, optim.clip_grad)
            if after_step is not None:
                after_step(i + 1, totals)
    bar.close()
    totals = all_reduce_sum(totals, ctx)
    stats = _summary(totals)
    stats.update(skipped=int(totals[4]), lr=lr, seconds=time.perf_counter() - began)
    return stats


def _train_step(
    model: nn.Module,
    batch: Any,
    scaler: torch.amp.GradScaler,
    accum_steps: int,
    sync: bool,
    device: torch.device,
    amp: str,
    where: tuple[int, int],
) -> torch.Tensor:
    """Forward and backward of one micro-batch; returns (loss_sum, hit1, hit5, count)."""
    inputs = batch.inputs.to(device, non_blocking=True)
    labels = batch.labels.to(device, non_blocking=True)
    window = model.no_sync() if not sync and isinstance(model, DistributedDataParallel) else contextlib.nullcontext()
    with window:
        with autocast(device, amp):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), labels)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at epoch {where[0] + 1} iteration {where[1] + 1}; "
                "lower optim.base_lr or check the data"
            )
        scaler.scale(loss / accum_steps).backward()
    hit1, hit5 = _hits(logits.detach(), labels)
    n = labels.shape[0]
    return torch.tensor([loss.item() * n, hit1, hit5, n], dtype=torch.float64)


@torch.no_grad()
def _eval_loop(
    model: nn.Module,
    loader: DataLoader,
    ctx: DistContext,
    progress: bool,
    desc: str,
    batch_totals: Callable[[nn.Module, Any, torch.Tensor], torch.Tensor],
) -> dict[str, float]:
    """Run ``batch_totals(net, batch, labels) -> (loss_sum, top1_hits, top5_hits, count)`` over
    ``loader`` in eval mode and all-reduce the sums across ranks."""
    net = unwrap(model)
    was_training = net.training
    net.eval()
    totals = torch.zeros(4, dtype=torch.float64)
    for batch in _bar(loader, ctx, progress, desc):
        if batch.inputs.shape[0] == 0:
            continue
        totals += batch_totals(net, batch, batch.labels.to(ctx.device))
    net.train(was_training)
    return _summary(all_reduce_sum(totals, ctx))


def evaluate(model: nn.Module, loader: DataLoader, ctx: DistContext, *, progress: bool = True) -> dict[str, float]:
    """Validation in fp32 without autocast, one view per video (official ``eval_epoch``, §4.6).

    Returns:
        ``loss``, ``top1``, ``top5`` and ``count`` over every rank's share of the list.
    """

    def totals(net: nn.Module, batch: Any, labels: torch.Tensor) -> torch.Tensor:
        logits = net(batch.inputs.to(ctx.device, non_blocking=True)).float()
        hit1, hit5 = _hits(logits, labels)
        n = labels.shape[0]
        return torch.tensor([F.cross_entropy(logits, labels).item() * n, hit1, hit5, n], dtype=torch.float64)

    return _eval_loop(model, loader, ctx, progress, "val", totals)


def test_multiview(
    model: nn.Module, loader: DataLoader, ctx: DistContext, *, progress: bool = True
) -> dict[str, float]:
    """Multi-view test in fp32: softmax per view, mean over the views of a video (official
    ``TEST.ADD_SOFTMAX`` + sum ensemble, which ranks the same).

    Args:
        loader: batches with inputs (B, V, 3, T, S, S) (a ``"test"`` dataset).

    Returns:
        ``top1``, ``top5`` (percent), ``loss`` (NLL of the averaged probabilities) and ``count`` videos.
    """

    def totals(net: nn.Module, batch: Any, labels: torch.Tensor) -> torch.Tensor:
        b, v = batch.inputs.shape[:2]
        probs = net(batch.inputs.flatten(0, 1).to(ctx.device)).float().softmax(-1).view(b, v, -1).mean(1)
        hit1, hit5 = _hits(probs, labels)
        nll = F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum").item()
        return torch.tensor([nll, hit1, hit5, b], dtype=torch.float64)

    return _eval_loop(model, loader, ctx, progress, "test", totals)


test_multiview.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name
