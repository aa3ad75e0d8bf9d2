"""AdamW parameter groups and the per-iteration learning rate (official behaviour §4.3-4.4)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from uniformerv2.train.config import OptimConfig

__all__ = ["param_groups", "group_names", "build_optimizer", "lr_at", "set_lr"]


def _no_weight_decay(model: nn.Module) -> set[str]:
    """The model's own rule (``UniFormerV2.no_weight_decay``, timm's convention), else every 1-D parameter."""
    rule = getattr(model, "no_weight_decay", None)
    if callable(rule):
        return set(rule())
    return {name for name, param in model.named_parameters() if param.ndim <= 1}


def _assign(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Trainable parameters by group: ``bn`` (BatchNorm), ``no_decay`` (the model's
    ``no_weight_decay()``: every other 1-D parameter), ``decay`` (rest).

    Walks ``named_modules`` and each module's direct parameters as the official
    ``construct_optimizer`` does; frozen parameters (``requires_grad=False``) are left out.
    """
    skip = _no_weight_decay(model)
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"bn": [], "no_decay": [], "decay": []}
    for module_name, module in model.named_modules():
        is_bn = isinstance(module, _NormBase)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            full = f"{module_name}.{name}" if module_name else name
            key = "bn" if is_bn else "no_decay" if full in skip else "decay"
            groups[key].append((full, param))
    return groups


def group_names(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names per group (``bn``, ``no_decay``, ``decay``), for inspection and tests."""
    return {key: [name for name, _ in members] for key, members in _assign(model).items()}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Official AdamW groups: BatchNorm and every 1-D parameter (biases, norms, ``class_embedding``,
    ``balance``) without weight decay, every other parameter (matrices, conv kernels,
    ``positional_embedding``, the 3-D fusion query, DPE kernels) with ``weight_decay``.

    Returns:
        Groups for :class:`torch.optim.AdamW`, each with a ``group`` name; empty groups are dropped.
    """
    decay = {"bn": 0.0, "no_decay": 0.0, "decay": weight_decay}
    return [
        {"params": [p for _, p in members], "weight_decay": decay[key], "group": key}
        for key, members in _assign(model).items()
        if members
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, one lr for all groups (no layer-wise decay, as official)."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.base_lr,
        betas=cfg.betas,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
    )


def lr_at(epoch: float, cfg: OptimConfig) -> float:
    """Learning rate at fractional epoch ``epoch`` (official ``cosine`` policy with warmup).

    With W = ``warmup_epochs`` and E = ``epochs``:
    lr_cos(e) = end + (base - end) * 0.5 * (1 + cos(pi * (e - W) / (E - W))); for e < W the lr is
    start + e * (base - start) / W (a linear ramp from ``warmup_start_lr``), otherwise lr_cos(e).
    It is evaluated every iteration with e = epoch + iteration / iterations_per_epoch, and
    reaches ``end_lr`` at e = E.
    """
    warm, total = cfg.warmup_epochs, cfg.epochs
    if epoch < warm:
        return cfg.warmup_start_lr + epoch * (cfg.base_lr - cfg.warmup_start_lr) / warm
    if total <= warm:
        return cfg.end_lr
    progress = (epoch - warm) / (total - warm)
    return cfg.end_lr + (cfg.base_lr - cfg.end_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group (the official code uses one lr for all)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
