"""CLIP-named primitives shared by the local and global UniBlocks.

Parameter names follow OpenAI CLIP and ``nn.MultiheadAttention`` (``in_proj_weight``,
``out_proj``, ``ln_1``, ``mlp.c_fc``) so that CLIP and official UniFormerV2 weights load
without renaming inside a block.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (official backbone ``LayerNorm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the activation of CLIP and of every UniFormerV2 MLP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class DropPath(nn.Module):
    """Stochastic depth that drops the whole residual branch of a video clip.

    The official code applies timm's DropPath to sequence-first tensors, so it drops tokens
    (backbone) or the whole batch (global blocks) instead of clips; see docs/architecture.md.
    Here one keep/drop draw is made per clip: ``group`` consecutive rows of dim 0 (the T' frames
    of a clip in the backbone's (B*T', L, C) layout) share it.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, group: int = 1) -> torch.Tensor:
        """x: (N*group, ...) -> x with each clip's rows kept (scaled by 1/(1-p)) or zeroed."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0] // group,) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.repeat_interleave(group, dim=0) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def clip_mlp(width: int, hidden: int, dropout: float | None = None) -> nn.Sequential:
    """``c_fc`` -> QuickGELU -> [Dropout] -> ``c_proj`` with CLIP's key names."""
    layers: list[tuple[str, nn.Module]] = [("c_fc", nn.Linear(width, hidden)), ("gelu", QuickGELU())]
    if dropout is not None:
        layers.append(("dropout", nn.Dropout(dropout)))
    layers.append(("c_proj", nn.Linear(hidden, width)))
    return nn.Sequential(OrderedDict(layers))


class Attention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s packed parameters, run through
    :func:`torch.nn.functional.scaled_dot_product_attention`.

    ``forward(x)`` is self-attention; ``forward(q, kv)`` is cross-attention (the global
    UniBlock), projecting ``q`` with the Q rows and ``kv`` with the K and V rows of
    ``in_proj_weight``.

    ``matmul_attention`` (off by default) computes softmax(q k^T / sqrt(d)) v as two explicit
    matrix multiplies instead: the bf16 CPU inference path sets it
    (:func:`uniformerv2.export.deploy.prepare_model`), because there the bf16 matmuls outrun the
    CPU SDPA kernel (docs/benchmarks.md).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.matmul_attention = False
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # (N, L, C) -> (N, heads, L, C / heads)
        n, length, c = x.shape
        return x.view(n, length, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, Lq, C); kv: (N, Lkv, C) or None. Returns (N, Lq, C)."""
        if kv is None:
            q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w_q, w_kv = self.in_proj_weight.split([x.shape[-1], 2 * x.shape[-1]])
            b_q, b_kv = self.in_proj_bias.split([x.shape[-1], 2 * x.shape[-1]])
            q = F.linear(x, w_q, b_q)
            k, v = F.linear(kv, w_kv, b_kv).chunk(2, dim=-1)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if self.matmul_attention:
            out = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(x.shape))
