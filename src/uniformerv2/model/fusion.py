"""Multi-stage fusion: how the global UniBlocks' video tokens are combined (paper §3.4, Fig. 4).

The global blocks run in order while the backbone runs, so a stage needs only the tokens of its
own backbone block. With G_i the i-th global block, X_i its backbone tokens and X^G_i its output:

- ``sequential`` (official code, every released weight): X^G_i = G_i(X^G_{i-1}, X_i) with
  X^G_0 = q, one learnable query (official ``temporal_cls_token``, zeros); the video token is
  the last output.
- ``parallel``: X^G_i = G_i(q_i, X_i) and F = Concat(X^G_1, ..., X^G_N) U, a linear projection
  (``proj``).
- ``hierarchical_kv``: X^G_i = G_i(q_i, [X^G_{i-1}, X_i]): the previous output is prepended to the
  current keys and values; F = X^G_N.
- ``hierarchical_q``: X^G_i = G_i([X^G_{i-1}, q_i], X_i): the previous output joins the query as a
  second token and the stage output is the mean of the two updated tokens; F = X^G_N.

As in the paper's equations, the last three give every stage i its own learnable query q_i
(``query[i]``, zeros); stage 1 has no previous output and is G_1(q_1, X_1). They have no released
weights; ``query`` of shape (N, 1, n) and ``proj`` are what they change.
"""

from __future__ import annotations

import torch
from torch import nn

from uniformerv2.model.global_block import GlobalUniBlock


class MultiStageFusion(nn.Module):
    """Holds the learnable queries and applies one fusion strategy.

    Args:
        dim: query width n.
        num_stages: number of global blocks N.
        strategy: one of "sequential", "parallel", "hierarchical_kv", "hierarchical_q".

    Attributes:
        query: (1, 1, n) for ``sequential`` (official ``temporal_cls_token``), else (N, 1, n):
            row i is the query q_i of stage i.
        proj: the projection U of ``parallel`` (N*n -> n), else None.
    """

    def __init__(self, dim: int, num_stages: int, strategy: str = "sequential") -> None:
        super().__init__()
        self.strategy = strategy
        rows = 1 if strategy == "sequential" else num_stages
        self.query = nn.Parameter(torch.zeros(rows, 1, dim))
        self.proj = nn.Linear(dim * num_stages, dim) if strategy == "parallel" else None
        if self.proj is not None:
            nn.init.zeros_(self.proj.bias)

    def stage(self, block: GlobalUniBlock, kv: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Run stage i = ``len(outputs)``. kv: (B, N, n); outputs: earlier stage outputs (B, 1, n)."""
        i = len(outputs)
        prev = outputs[-1] if outputs else None
        if self.strategy == "sequential":
            query = self.query if prev is None else prev
            return block(query.expand(kv.shape[0], -1, -1).to(kv.dtype), kv)
        q_i = self.query[i : i + 1].expand(kv.shape[0], -1, -1).to(kv.dtype)
        if prev is None or self.strategy == "parallel":
            return block(q_i, kv)
        if self.strategy == "hierarchical_kv":
            return block(q_i, torch.cat([prev, kv], dim=1))
        return block(torch.cat([prev, q_i], dim=1), kv).mean(dim=1, keepdim=True)

    def finish(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Stage outputs -> video token F of shape (B, n)."""
        if self.proj is not None:
            return self.proj(torch.cat(outputs, dim=-1))[:, 0]
        return outputs[-1][:, 0]
