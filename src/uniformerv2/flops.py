"""Compute cost: multiply-accumulate count (GMAC, the fvcore/paper convention) and parameters.

Counts come from :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions)
with a formula for the CPU attention kernel, which the counter does not know by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

_aten = torch.ops.aten


def _sdpa_flops(query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int]) -> int:
    """FLOPs (2 per MAC) of softmax(Q K^T) V: two batched matmuls."""
    *batch, lq, d = query_shape
    lk, dv = key_shape[-2], value_shape[-1]
    n = 1
    for b in batch:
        n *= b
    return 2 * n * lq * lk * d + 2 * n * lq * lk * dv


def _register_cpu_sdpa() -> None:
    op = getattr(_aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return
    from torch.utils.flop_counter import flop_registry

    if op.default in flop_registry:
        return

    @register_flop_formula(op)
    def _formula(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return _sdpa_flops(query_shape, key_shape, value_shape)


_register_cpu_sdpa()


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """Multiply-accumulates of one forward pass.

    Args:
        model: any module taking one tensor.
        input_shape: e.g. (1, 3, 8, 224, 224).

    Returns:
        ``{"gmac": total GMAC, "params": parameter count, "by_module": {top-level module: GMAC}}``.
    """
    param = next(model.parameters())
    x = torch.zeros(tuple(input_shape), device=param.device, dtype=param.dtype)
    was_training = model.training
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    model.eval().requires_grad_(False)  # no graph, and no no_grad views the module tracker rejects
    counter = FlopCounterMode(display=False, depth=3)
    try:
        with counter:
            model(x)
    finally:
        model.train(was_training)
        for name, p in model.named_parameters():
            p.requires_grad_(grads[name])
    by_module: dict[str, float] = {}
    prefix = type(model).__name__ + "."
    for name, ops in counter.get_flop_counts().items():
        parts = name[len(prefix) :].split(".") if name.startswith(prefix) else []
        # direct children, and the members of ModuleLists (which are never called themselves)
        if len(parts) == 1 and not isinstance(getattr(model, parts[0], None), nn.ModuleList):
            by_module[parts[0]] = by_module.get(parts[0], 0.0) + sum(ops.values()) / 2e9
        elif len(parts) == 2 and parts[1].isdigit():
            by_module[parts[0]] = by_module.get(parts[0], 0.0) + sum(ops.values()) / 2e9
    return {
        "gmac": counter.get_total_flops() / 2e9,
        "params": float(sum(p.numel() for p in model.parameters())),
        "by_module": by_module,
    }
