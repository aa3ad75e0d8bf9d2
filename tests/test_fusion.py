"""Multi-stage fusion (paper §3.4): per-stage queries q_i and which stage output depends on which query."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model

from uniformerv2 import UniFormerV2

STRATEGIES = ("sequential", "parallel", "hierarchical_kv", "hierarchical_q")
STAGES = 3


def _model(fusion: str) -> UniFormerV2:
    """Tiny model with 3 global blocks and every parameter randomised (zero init would hide the wiring)."""
    return make_tiny_model(num_classes=2, layers=3, return_list=(0, 1, 2), fusion=fusion)


def _video() -> torch.Tensor:
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))


def _stage_inputs(model: UniFormerV2) -> list[torch.Tensor]:
    """Keys/values X_i of every global block, computed without the fusion module."""
    kvs = []
    x, frames, grid = model.embed(_video())
    for i, block in enumerate(model.blocks):
        x = block(x, frames, grid)
        if i in model.config.return_list:
            kvs.append(model.global_blocks[len(kvs)].tokens(x, frames, grid))
    return kvs


def _stage_outputs(model: UniFormerV2) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    for j, kv in enumerate(_stage_inputs(model)):
        outputs.append(model.fusion.stage(model.global_blocks[j], kv, outputs))
    return outputs


@pytest.mark.parametrize("fusion", STRATEGIES)
def test_query_shapes(fusion: str) -> None:
    model = _model(fusion)
    n = model.config.n_dim
    rows = 1 if fusion == "sequential" else STAGES
    assert model.fusion.query.shape == (rows, 1, n)
    assert (model.fusion.proj is None) == (fusion != "parallel")
    if fusion == "parallel":
        assert model.fusion.proj.weight.shape == (n, STAGES * n)


@pytest.mark.parametrize("fusion", STRATEGIES)
def test_stage_outputs_follow_the_paper_equations(fusion: str) -> None:
    """Each stage output equals the §3.4 equation evaluated with direct global-block calls."""
    model = _model(fusion)
    g, q = model.global_blocks, model.fusion.query
    with torch.no_grad():
        kvs = _stage_inputs(model)
        got = _stage_outputs(model)
        b = kvs[0].shape[0]
        expected: list[torch.Tensor] = []
        for i, kv in enumerate(kvs):
            q_i = q[0 if fusion == "sequential" else i].expand(b, 1, -1)
            prev = expected[-1] if expected else None
            if fusion == "sequential":
                expected.append(g[i](q_i if prev is None else prev, kv))
            elif fusion == "parallel" or prev is None:
                expected.append(g[i](q_i, kv))
            elif fusion == "hierarchical_kv":
                expected.append(g[i](q_i, torch.cat([prev, kv], dim=1)))
            else:
                both = g[i](torch.cat([prev, q_i], dim=1), kv)
                expected.append((both[:, :1] + both[:, 1:]) / 2)
        for a, e in zip(got, expected, strict=True):
            torch.testing.assert_close(a, e, rtol=0, atol=1e-6)
        features = model.forward_features(_video())
        if fusion == "parallel":
            video_token = torch.cat(expected, dim=-1)[:, 0] @ model.fusion.proj.weight.T + model.fusion.proj.bias
        else:
            video_token = expected[-1][:, 0]
        alpha = torch.sigmoid(model.balance)
        frame_cls = model.forward_tokens(_video(), layers=[])["class_tokens"].mean(dim=1)
        torch.testing.assert_close(features, (1 - alpha) * video_token + alpha * frame_cls, rtol=0, atol=1e-5)


# stage i -> the query rows its output depends on, read off the §3.4 equations
DEPENDS = {
    "sequential": lambda i: {0},  # the single query reaches every stage through the chain
    "parallel": lambda i: {i},  # G_i(q_i, X_i)
    "hierarchical_kv": lambda i: set(range(i + 1)),  # G_i(q_i, [X^G_{i-1}, X_i]), recursively
    "hierarchical_q": lambda i: set(range(i + 1)),  # G_i([X^G_{i-1}, q_i], X_i), recursively
}


@pytest.mark.parametrize("fusion", STRATEGIES)
def test_stage_depends_on_its_own_query_only_where_the_equation_says(fusion: str) -> None:
    model = _model(fusion)
    outputs = _stage_outputs(model)
    for i, out in enumerate(outputs):
        (grad,) = torch.autograd.grad(out.square().sum(), model.fusion.query, retain_graph=True)
        used = {row for row in range(grad.shape[0]) if grad[row].abs().max() > 0}
        assert used == DEPENDS[fusion](i), f"stage {i} of {fusion} depends on query rows {sorted(used)}"


@pytest.mark.parametrize("fusion", ["parallel", "hierarchical_kv", "hierarchical_q"])
def test_per_stage_queries_are_distinct_parameters(fusion: str) -> None:
    """Changing q_2 alone changes the video token; the stage-1 output stays bit-identical."""
    model = _model(fusion)
    with torch.no_grad():
        before = _stage_outputs(model)
        model.fusion.query[2].add_(1.0)
        after = _stage_outputs(model)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert not torch.allclose(before[2], after[2])


@pytest.mark.parametrize("fusion", ["parallel", "hierarchical_kv", "hierarchical_q"])
def test_per_stage_queries_survive_save_and_load(tmp_path, fusion: str) -> None:
    from uniformerv2 import load_model
    from uniformerv2.weights import save_pretrained

    model = _model(fusion)
    loaded = load_model(str(save_pretrained(model, tmp_path / fusion))).eval()
    assert loaded.config.fusion == fusion
    assert torch.equal(loaded.fusion.query, model.fusion.query)
    with torch.no_grad():
        torch.testing.assert_close(loaded(_video()), model(_video()), rtol=0, atol=0)
