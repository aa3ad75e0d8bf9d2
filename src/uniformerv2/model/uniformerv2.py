"""The UniFormerV2 network (paper Fig. 2; official ``VisionTransformer`` + ``Transformer``).

Shapes: input (B, 3, T, H, W) float, normalised; tokens inside are batch-first
(B*T', 1+h*w, C) with frame index b*T'+t; the frame count is read from the input.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from uniformerv2.config import UniFormerV2Config
from uniformerv2.model.fusion import MultiStageFusion
from uniformerv2.model.global_block import GlobalUniBlock
from uniformerv2.model.layers import LayerNorm
from uniformerv2.model.local_block import LocalUniBlock


class ClassifierHead(nn.Sequential):
    """LayerNorm -> Dropout -> Linear (official ``transformer.proj``; ``num_classes=0`` keeps the norm only)."""

    def __init__(self, dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()


class UniFormerV2(nn.Module):
    """UniFormerV2: a CLIP ViT armed with local and global UniBlocks.

    Args:
        config: architecture; keyword arguments build a :class:`UniFormerV2Config` instead.

    Attributes:
        num_features: width of :meth:`forward_features` (n).
        pretrained_cfg: set by the loaders: label names and preprocessing of the weights.
    """

    def __init__(self, config: UniFormerV2Config | None = None, **kwargs: Any) -> None:
        super().__init__()
        cfg = config if config is not None else UniFormerV2Config(**kwargs)
        self.config = cfg
        self.num_features = cfg.n_dim
        self.pretrained_cfg: dict[str, Any] = {}
        c, p = cfg.width, cfg.patch_size
        kt = cfg.stem_kernel_t if cfg.temporal_downsample else 1
        self.conv1 = nn.Conv3d(
            3, c, (kt, p, p), stride=(2 if cfg.temporal_downsample else 1, p, p), padding=(kt // 2, 0, 0), bias=False
        )
        scale = c**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(c))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.grid_size**2 + 1, c))
        self.ln_pre = LayerNorm(c)
        rates = torch.linspace(0, cfg.backbone_drop_path_rate, cfg.layers, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            LocalUniBlock(c, cfg.heads, cfg.local_mhra, cfg.dw_reduction, rate) for rate in rates
        )
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.n_layers, device="cpu").tolist()
        self.global_blocks = nn.ModuleList(
            GlobalUniBlock(cfg.n_dim, cfg.n_head, cfg.mlp_factor, cfg.mlp_dropout[j], rates[j])
            for j in range(cfg.n_layers)
        )
        self.fusion = MultiStageFusion(cfg.n_dim, cfg.n_layers, cfg.fusion)
        self.balance = None if cfg.frozen else nn.Parameter(torch.zeros(cfg.n_dim))
        self.head = ClassifierHead(cfg.n_dim, cfg.num_classes, cfg.cls_dropout)
        self._stage_of = {block: stage for stage, block in enumerate(cfg.return_list)}

    # ----------------------------------------------------------------------------- embedding
    def _pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        """Spatial position embedding for a (h, w) grid, resized when needed as open_clip does
        (bicubic, align_corners=False, antialiased)."""
        pe = self.positional_embedding
        side = math.isqrt(pe.shape[0] - 1)
        if grid == (side, side):
            return pe
        patch = pe[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        patch = F.interpolate(patch, size=grid, mode="bicubic", align_corners=False, antialias=True)
        return torch.cat([pe[:1], patch.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(pe.dtype)])

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, T, H, W) video tensor, got shape {tuple(x.shape)}")
        frames, p = x.shape[2], self.config.patch_size
        if self.config.temporal_downsample and frames % 2:
            raise ValueError(f"this model downsamples time by 2 and needs an even number of frames, got T={frames}")
        if min(x.shape[-2:]) < p:
            raise ValueError(f"input {tuple(x.shape[-2:])} is smaller than one {p}x{p} patch")

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, int, tuple[int, int]]:
        """Stem: (B, 3, T, H, W) -> tokens (B*T', 1+h*w, C), T', (h, w)."""
        self._check_input(x)
        x = self.conv1(x.to(self.conv1.weight.dtype))  # (B, C, T', h, w)
        b, c, frames, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b * frames, h * w, c)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, c)
        x = torch.cat([cls, x], dim=1) + self._pos_embed((h, w)).to(x.dtype)
        return self.ln_pre(x), frames, (h, w)

    # ----------------------------------------------------------------------------- trunk
    def _trunk(
        self, x: torch.Tensor, keep: set[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
        """Backbone with interleaved global blocks.

        Returns the fused video representation (B, n), the final class tokens (B, T', C) and the
        tokens after each block in ``keep`` as (B, T', 1+h*w, C).
        """
        x, frames, grid = self.embed(x)
        outputs: list[torch.Tensor] = []
        kept: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            if self.config.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, frames, grid, use_reentrant=False)
            else:
                x = block(x, frames, grid)
            if i in self._stage_of:
                stage = cast(GlobalUniBlock, self.global_blocks[self._stage_of[i]])
                outputs.append(self.fusion.stage(stage, stage.tokens(x, frames, grid), outputs))
            if keep is not None and i in keep:
                kept[i] = x.reshape(-1, frames, *x.shape[1:])
        cls_tokens = x[:, 0].reshape(-1, frames, x.shape[-1])
        return self._final_fusion(outputs, cls_tokens), cls_tokens, kept

    def _final_fusion(self, outputs: list[torch.Tensor], cls_tokens: torch.Tensor) -> torch.Tensor:
        """Z = (1 - sigmoid(balance)) * F + sigmoid(balance) * mean_t(F^C) (official §1.7), or F when frozen."""
        frame_cls = cls_tokens.mean(dim=1)
        if not outputs:
            return frame_cls
        video = self.fusion.finish(outputs)
        if self.balance is None:
            return video
        alpha = torch.sigmoid(self.balance).to(video.dtype)
        return (1 - alpha) * video + alpha * frame_cls

    # ----------------------------------------------------------------------------- public API
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> fused video representation (B, n), the input of the head's LayerNorm."""
        return self._trunk(x)[0]

    def forward_tokens(self, x: torch.Tensor, layers: list[int] | None = None) -> dict[str, Any]:
        """Features plus per-layer tokens (a dict; unlike timm's ``forward_intermediates``, which returns
        a tuple of the final output and a list of feature maps).

        Returns a dict with ``features`` (B, n), ``class_tokens`` (B, T', C) from the last block,
        ``cls`` mapping each requested block index to its per-frame class tokens (B, T', C) and
        ``patches`` mapping it to the patch tokens (B, T', h, w, C). ``layers`` defaults to all blocks.
        """
        keep = set(range(len(self.blocks))) if layers is None else {i % len(self.blocks) for i in layers}
        h = x.shape[-2] // self.config.patch_size
        w = x.shape[-1] // self.config.patch_size
        features, cls_tokens, kept = self._trunk(x, keep)
        return {
            "features": features,
            "class_tokens": cls_tokens,
            "cls": {i: t[:, :, 0] for i, t in kept.items()},
            "patches": {i: t[:, :, 1:].reshape(*t.shape[:2], h, w, -1) for i, t in kept.items()},
        }

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, n) -> logits (B, num_classes), or the normalised features when ``pre_logits``."""
        if pre_logits:
            return self.head.norm(features)
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> logits (B, num_classes); no softmax."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` outputs."""
        self.config.num_classes = num_classes
        ref = self.head.norm.weight
        fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.fc = fc.to(device=ref.device, dtype=ref.dtype)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.config.grad_checkpointing = enable

    def freeze_backbone(self) -> None:
        """Official frozen training: only the query, DPE, global blocks, fusion and head learn."""
        for module in (self.conv1, self.ln_pre, self.blocks):
            module.requires_grad_(False)
        self.class_embedding.requires_grad_(False)
        self.positional_embedding.requires_grad_(False)

    def no_weight_decay(self) -> set[str]:
        """Parameter names the official optimiser exempts from weight decay (all 1-D tensors)."""
        return {name for name, p in self.named_parameters() if p.ndim <= 1}
