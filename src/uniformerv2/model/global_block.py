"""Global UniBlock: a learnable video query cross-attends to all spatiotemporal tokens
(paper §3.3, Eq. 6-8; official ``Extractor`` plus the ``dpe`` convolutions of ``Transformer``).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from uniformerv2.model.layers import Attention, DropPath, clip_mlp


class GlobalUniBlock(nn.Module):
    """Dynamic position encoding + cross-attention MHRA + FFN on the video query.

    The DPE (depthwise 3x3x3 conv, zero bias) is added to a *copy* of the patch tokens that
    serves as keys and values; the backbone stream itself is left untouched. Keys and values
    hold every frame's class token as well: T' * (h*w + 1) tokens. Zero initialisation of
    ``attn.out_proj`` and ``mlp.c_proj`` makes the block the identity on its query at step 0.

    Args:
        dim: width n (= backbone width).
        heads: attention heads.
        mlp_factor: MLP hidden ratio.
        dropout: dropout after the MLP activation.
        drop_path: stochastic depth of both residual branches.
    """

    def __init__(self, dim: int, heads: int, mlp_factor: float = 4.0, dropout: float = 0.5, drop_path: float = 0.0):
        super().__init__()
        self.dpe = nn.Conv3d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.ln_1 = nn.LayerNorm(dim)
        self.ln_3 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = clip_mlp(dim, round(mlp_factor * dim), dropout=dropout)
        self.drop_path = DropPath(drop_path)
        c_fc, c_proj = cast(nn.Linear, self.mlp.c_fc), cast(nn.Linear, self.mlp.c_proj)
        for param in (self.dpe.bias, self.attn.out_proj.weight, self.attn.out_proj.bias, c_proj.weight, c_proj.bias):
            nn.init.zeros_(cast(torch.Tensor, param))
        nn.init.xavier_uniform_(c_fc.weight)

    def tokens(self, x: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
        """Keys/values of this stage: (B*T', 1+h*w, C) -> (B, T'*(1+h*w), C) with DPE added."""
        bt, length, c = x.shape
        b = bt // frames
        patches = x[:, 1:].reshape(b, frames, grid[0], grid[1], c).permute(0, 4, 1, 2, 3)
        pos = self.dpe(patches).permute(0, 2, 3, 4, 1).reshape(bt, length - 1, c)
        kv = torch.cat([x[:, :1], x[:, 1:] + pos], dim=1)
        return kv.reshape(b, frames * length, c)

    def forward(self, query: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """query: (B, Q, n), kv: (B, N, n) normalised here by ``ln_3`` -> updated query (B, Q, n)."""
        query = query + self.drop_path(self.attn(self.ln_1(query), self.ln_3(kv)))
        return query + self.drop_path(self.mlp(self.ln_2(query)))
