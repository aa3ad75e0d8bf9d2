"""Multi-stage fusion: how the global UniBlocks' video tokens are combined (paper §3.4, Fig. 4).

Every strategy starts from one learnable query (official ``temporal_cls_token``, zeros) and
runs the global blocks in order while the backbone runs, so a stage needs only the tokens of
its own backbone block.

- ``sequential`` (official code, every released weight): the output of stage j is the query of
  stage j+1; the video token is the last output.
- ``parallel``: every stage attends with the initial query; the stage outputs are concatenated
  and linearly projected (``proj``).
- ``hierarchical_kv``: every stage attends with the initial query; the previous stage's output
  is prepended to the current stage's keys and values.
- ``hierarchical_q``: the previous stage's output joins the initial query as a second query
  token; the stage output is the mean of the two updated tokens.

The last three have no released weights; ``proj`` is the only parameter they add.
"""

from __future__ import annotations

import torch
from torch import nn

from uniformerv2.model.global_block import GlobalUniBlock


class MultiStageFusion(nn.Module):
    """Holds the learnable query and applies one fusion strategy.

    Args:
        dim: query width n.
        num_stages: number of global blocks.
        strategy: one of "sequential", "parallel", "hierarchical_kv", "hierarchical_q".
    """

    def __init__(self, dim: int, num_stages: int, strategy: str = "sequential") -> None:
        super().__init__()
        self.strategy = strategy
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.proj = nn.Linear(dim * num_stages, dim) if strategy == "parallel" else None
        if self.proj is not None:
            nn.init.zeros_(self.proj.bias)

    def stage(self, block: GlobalUniBlock, kv: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Run one global block. kv: (B, N, n); outputs: earlier stage outputs (B, 1, n)."""
        q0 = self.query.expand(kv.shape[0], -1, -1).to(kv.dtype)
        prev = outputs[-1] if outputs else None
        if self.strategy == "sequential":
            return block(q0 if prev is None else prev, kv)
        if self.strategy == "hierarchical_kv" and prev is not None:
            return block(q0, torch.cat([prev, kv], dim=1))
        if self.strategy == "hierarchical_q" and prev is not None:
            return block(torch.cat([q0, prev], dim=1), kv).mean(dim=1, keepdim=True)
        return block(q0, kv)

    def finish(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Stage outputs -> video token F of shape (B, n)."""
        if self.proj is not None:
            return self.proj(torch.cat(outputs, dim=-1))[:, 0]
        return outputs[-1][:, 0]
