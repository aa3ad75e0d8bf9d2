"""Local UniBlock: local temporal MHRA followed by a CLIP ViT block (paper §3.2, Eq. 3-5).

The official code (``Local_MHRA`` / ``ResidualAttentionBlock``) implements the temporal
affinity as BatchNorm -> 1x1x1 reduce -> depthwise temporal conv (k=3) -> 1x1x1 expand with a
zero-initialised expand, so the branch is the identity at initialisation. With ``"double"`` a
second one runs between the attention and the MLP. Class tokens never pass through it.
"""

from __future__ import annotations

import torch
from torch import nn

from uniformerv2.model.layers import Attention, DropPath, LayerNorm, clip_mlp


class LocalTemporalMHRA(nn.Module):
    """Local temporal relation aggregator on (B, C, T, h, w) patch tokens (official ``Local_MHRA``).

    Args:
        dim: channels C.
        dw_reduction: bottleneck ratio; reduced width ``int(dim // dw_reduction)``.
        kernel_t: temporal kernel of the depthwise conv (3).
    """

    def __init__(self, dim: int, dw_reduction: float = 1.5, kernel_t: int = 3) -> None:
        super().__init__()
        reduced = int(dim // dw_reduction)
        self.norm = nn.BatchNorm3d(dim)
        self.reduce = nn.Conv3d(dim, reduced, kernel_size=1)
        self.temporal = nn.Conv3d(
            reduced, reduced, kernel_size=(kernel_t, 1, 1), padding=(kernel_t // 2, 0, 0), groups=reduced
        )
        self.expand = nn.Conv3d(reduced, dim, kernel_size=1)
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)  # type: ignore[arg-type]  # Conv3d has bias=True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T, h, w) -> (B, C, T, h, w); the residual is added by the caller."""
        return self.expand(self.temporal(self.reduce(self.norm(x))))


class LocalUniBlock(nn.Module):
    """One backbone block: [LT-MHRA] -> spatial MHSA (CLIP) -> [LT-MHRA] -> FFN.

    With ``local_mhra="none"`` this is exactly a CLIP ``ResidualAttentionBlock``.

    Args:
        dim: width C.
        heads: attention heads.
        local_mhra: "none", "single" or "double".
        dw_reduction: bottleneck ratio of the local MHRA.
        drop_path: stochastic depth of every residual branch of this block.
    """

    def __init__(
        self, dim: int, heads: int, local_mhra: str = "none", dw_reduction: float = 1.5, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.lmhra1 = LocalTemporalMHRA(dim, dw_reduction) if local_mhra != "none" else None
        self.lmhra2 = LocalTemporalMHRA(dim, dw_reduction) if local_mhra == "double" else None
        self.ln_1 = LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln_2 = LayerNorm(dim)
        self.mlp = clip_mlp(dim, dim * 4)
        self.drop_path = DropPath(drop_path)

    def _local(self, lmhra: LocalTemporalMHRA, x: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
        # x: (B*T, 1+h*w, C); only the patch tokens take the temporal branch.
        bt, _, c = x.shape
        patches = x[:, 1:].reshape(bt // frames, frames, grid[0], grid[1], c).permute(0, 4, 1, 2, 3)
        delta = self.drop_path(lmhra(patches))  # (B, C, T, h, w)
        delta = delta.permute(0, 2, 3, 4, 1).reshape(bt, grid[0] * grid[1], c)
        return torch.cat([x[:, :1], x[:, 1:] + delta], dim=1)

    def forward(self, x: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
        """x: (B*T', 1+h*w, C) frame-major tokens (index b*T'+t) -> same shape."""
        if self.lmhra1 is not None:
            x = self._local(self.lmhra1, x, frames, grid)
        x = x + self.drop_path(self.attn(self.ln_1(x)), frames)
        if self.lmhra2 is not None:
            x = self._local(self.lmhra2, x, frames, grid)
        return x + self.drop_path(self.mlp(self.ln_2(x)), frames)
