"""Behaviour of the network itself: initialisation, shapes, frame counts, resolutions, options."""

from __future__ import annotations

import pytest
import torch
from conftest import random_clip as video
from conftest import randomise
from conftest import tiny_config as tiny
from torch import nn

from uniformerv2 import UniFormerV2, UniFormerV2Config, count_flops
from uniformerv2.model.layers import Attention, DropPath
from uniformerv2.model.variants import create_variant, list_variants, variant_config


def test_attention_matches_multihead_attention() -> None:
    ours, ref = Attention(64, 4), nn.MultiheadAttention(64, 4)
    randomise(ours)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 10, 64)
    q, kv = torch.randn(3, 1, 64), torch.randn(3, 20, 64)
    torch.testing.assert_close(ours(x), ref(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))[0].transpose(0, 1))
    expected = ref(q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1))[0].transpose(0, 1)
    torch.testing.assert_close(ours(q, kv), expected)


def test_fresh_model_is_clip_plus_identity_blocks() -> None:
    """Zero-initialised query, out_proj, c_proj and balance: features = 0.5 * mean of final class tokens."""
    model = UniFormerV2(tiny(local_mhra="double")).eval()
    with torch.no_grad():
        out = model.forward_tokens(video())
    torch.testing.assert_close(out["features"], 0.5 * out["class_tokens"].mean(1))


def test_local_mhra_is_identity_at_init() -> None:
    plain = randomise(UniFormerV2(tiny(local_mhra="none"))).eval()
    local = UniFormerV2(tiny(local_mhra="double")).eval()
    local.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(local(video()), plain(video()))


def test_frame_count_is_read_from_input() -> None:
    model = randomise(UniFormerV2(tiny())).eval()
    with torch.no_grad():
        for t in (1, 4, 7):
            assert model(video(t=t)).shape == (2, 5)


def test_odd_frames_with_temporal_downsampling_is_an_error() -> None:
    model = UniFormerV2(tiny(temporal_downsample=True)).eval()
    assert model(video(t=4)).shape == (2, 5)
    with pytest.raises(ValueError, match="even number of frames, got T=5"):
        model(video(t=5))


def test_temporal_downsampling_halves_frames() -> None:
    model = UniFormerV2(tiny(temporal_downsample=True)).eval()
    with torch.no_grad():
        out = model.forward_tokens(video(t=8), layers=[0])
    assert out["cls"][0].shape == (2, 4, 64)
    assert out["patches"][0].shape == (2, 4, 2, 2, 64)


def test_other_resolutions_interpolate_position_embedding() -> None:
    model = randomise(UniFormerV2(tiny())).eval()
    side = model.positional_embedding.shape[0] - 1
    assert side == 4
    torch.testing.assert_close(model._pos_embed((2, 2)), model.positional_embedding)
    with torch.no_grad():
        assert model(video(h=64, w=96)).shape == (2, 5)
        out = model.forward_tokens(video(h=48, w=80), layers=[-1])
    assert out["patches"][2].shape == (2, 4, 3, 5, 64)


def test_bad_input_shape_is_an_error() -> None:
    model = UniFormerV2(tiny())
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(torch.zeros(2, 4, 3, 32, 32))


@pytest.mark.parametrize("fusion", ["sequential", "parallel", "hierarchical_kv", "hierarchical_q"])
def test_fusion_strategies_train(fusion: str) -> None:
    model = randomise(UniFormerV2(tiny(fusion=fusion)))
    model(video()).sum().backward()
    assert model.fusion.query.grad is not None and model.fusion.query.grad.abs().sum() > 0
    assert (model.fusion.proj is not None) == (fusion == "parallel")


def test_fusion_strategies_differ() -> None:
    torch.manual_seed(0)
    base = randomise(UniFormerV2(tiny()))
    outs = {}
    for fusion in ("sequential", "hierarchical_kv", "hierarchical_q"):
        model = UniFormerV2(tiny(fusion=fusion)).eval()
        state = base.state_dict()  # every per-stage query q_i starts as the sequential query
        state["fusion.query"] = state["fusion.query"].expand_as(model.fusion.query).clone()
        model.load_state_dict(state)
        with torch.no_grad():
            outs[fusion] = model(video())
    assert not torch.allclose(outs["sequential"], outs["hierarchical_kv"])
    assert not torch.allclose(outs["sequential"], outs["hierarchical_q"])


def test_frozen_variant_outputs_query_only() -> None:
    model = randomise(UniFormerV2(tiny(frozen=True))).eval()
    assert model.balance is None and "balance" not in model.state_dict()
    with torch.no_grad():
        out = model.forward_tokens(video())
        stages: list[torch.Tensor] = []
        x, frames, grid = model.embed(video())
        for i, block in enumerate(model.blocks):
            x = block(x, frames, grid)
            if i in model.config.return_list:
                g = model.global_blocks[model.config.return_list.index(i)]
                stages.append(model.fusion.stage(g, g.tokens(x, frames, grid), stages))
    torch.testing.assert_close(out["features"], stages[-1][:, 0])


def test_gradient_checkpointing_same_output_and_grads() -> None:
    model = randomise(UniFormerV2(tiny(local_mhra="single")))
    model.train()
    for m in model.modules():  # deterministic train-mode forward
        if isinstance(m, (nn.Dropout, nn.BatchNorm3d)):
            m.eval()
    x = video()
    model(x).sum().backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for a, p in zip(ref, model.parameters(), strict=False):
        torch.testing.assert_close(a, p.grad)


def test_drop_path_is_per_sample() -> None:
    torch.manual_seed(0)
    layer = DropPath(0.5).train()
    out = layer(torch.ones(64, 3, 5))
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)  # all or nothing per sample
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    assert torch.equal(layer.eval()(out), out)


def test_reset_classifier() -> None:
    model = UniFormerV2(tiny())
    model.reset_classifier(11)
    assert model(video()).shape == (2, 11) and model.config.num_classes == 11
    model.reset_classifier(0)
    assert model(video()).shape == (2, 64)


def test_freeze_backbone_matches_official_trainable_set() -> None:
    model = UniFormerV2(tiny(frozen=True))
    model.freeze_backbone()
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"global_blocks", "fusion", "head"}


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="local_mhra"):
        tiny(local_mhra="triple")
    with pytest.raises(ValueError, match="return_list"):
        tiny(return_list=(2, 1))
    with pytest.raises(ValueError, match="n_dim"):
        tiny(n_dim=32)
    with pytest.raises(ValueError, match="n_layers=3"):
        UniFormerV2Config.from_official_kwargs({"return_list": [1, 2], "n_layers": 3})


# Official figures (official-behaviour §1.4, §1.10).
PARAMS = {
    ("uniformerv2_b16", 400): 114_552_208,
    ("uniformerv2_b16_ssv2", 174): 162_992_814,
    ("uniformerv2_l14", 400): 354_099_600,
    ("uniformerv2_l14_336", 400): 354_427_280,
    ("uniformerv2_l14_336_frozen", 400): 354_426_256,
    ("uniformerv2_l14_ssv2", 174): 573_949_966,
}
STATE_TENSORS = {
    "uniformerv2_b16": 219,
    "uniformerv2_b16_ssv2": 547,
    "uniformerv2_l14": 363,
    "uniformerv2_l14_336_frozen": 362,
    "uniformerv2_l14_ssv2": 1083,
}


@pytest.mark.parametrize("name,classes", sorted(PARAMS))
def test_parameter_counts_match_official(name: str, classes: int) -> None:
    with torch.device("meta"):
        model = create_variant(name, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[(name, classes)]
    if name in STATE_TENSORS:
        assert len(model.state_dict()) == STATE_TENSORS[name]


def test_variants_registry() -> None:
    assert set(list_variants()) >= {n for n, _ in PARAMS}
    assert variant_config("uniformerv2_b16_ssv2").return_list == tuple(range(4, 12))
    with pytest.raises(KeyError, match="did you mean uniformerv2_b16"):
        variant_config("uniformerv2_b61")


def test_flops_b16_match_official() -> None:
    """Counted on the meta device: shapes only, no memory or arithmetic."""
    with torch.device("meta"):
        model = create_variant("uniformerv2_b16")
    result = count_flops(model, (1, 3, 8, 224, 224))
    assert result["gmac"] == pytest.approx(148.3, rel=0.01)
    assert result["by_module"]["blocks"] == pytest.approx(139.7, rel=0.01)
    assert result["by_module"]["global_blocks"] == pytest.approx(7.5, rel=0.02)
    assert result["params"] == 114_552_208


def test_flops_formula_on_a_tiny_model() -> None:
    """The counter agrees with the closed-form MAC count of the architecture."""
    cfg = tiny(return_list=(2,), layers=3, num_classes=5)
    model = UniFormerV2(cfg)
    b, t, hw, c = 1, 4, 4, 64
    tokens = t * (hw + 1)
    stem = t * hw * c * 3 * 16 * 16
    block = tokens * (4 * c * c + 8 * c * c) + 2 * t * (hw + 1) ** 2 * c
    dpe = t * hw * c * 27
    glob = (c * c + 2 * tokens * c * c + c * c) + 2 * tokens * c + 8 * c * c
    head = c * 5
    expected = b * (stem + 3 * block + dpe + glob + head)
    assert count_flops(model, (1, 3, 4, 32, 32))["gmac"] * 1e9 == pytest.approx(expected, rel=1e-9)


def test_position_embedding_resize_preserves_constant_and_class_token() -> None:
    model = UniFormerV2(tiny())
    with torch.no_grad():
        model.positional_embedding[1:] = 0.25
        model.positional_embedding[0] = -1.0
    for grid in ((2, 2), (3, 5), (8, 8)):
        pe = model._pos_embed(grid)
        assert pe.shape == (1 + grid[0] * grid[1], 64)
        torch.testing.assert_close(pe[0], torch.full((64,), -1.0))
        torch.testing.assert_close(pe[1:], torch.full_like(pe[1:], 0.25))


def test_torch_export_with_dynamic_batch() -> None:
    """No in-place writes on views and no Python-side shape guesses: torch.export traces the model."""
    from torch.export import Dim

    model = randomise(UniFormerV2(tiny(local_mhra="double", temporal_downsample=True))).eval()
    program = torch.export.export(model, (video(t=4),), dynamic_shapes=({0: Dim("batch", min=1, max=64)},))
    x = video(b=5, t=4, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x))


def test_drop_path_is_per_clip_in_the_backbone() -> None:
    """All T' frames of a clip share one keep/drop draw."""
    torch.manual_seed(1)
    layer = DropPath(0.5).train()
    out = layer(torch.ones(40 * 4, 3, 5), group=4).reshape(40, -1)
    assert torch.all(out.min(1).values == out.max(1).values)
    assert 0 < (out[:, 0] == 0).sum() < 40
