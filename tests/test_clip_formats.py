"""CLIP initialisation from the Hugging Face ``transformers`` layout equals the OpenAI layout, bit for bit.

The HF file is made here from a random OpenAI-layout state dict by an independent inverse mapping
(the transformers ``CLIPModel`` key names: ``vision_model.embeddings.*``, ``pre_layrnorm``,
``encoder.layers.{i}.self_attn.{q,k,v}_proj``...), so the test does not reuse the library's map.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model
from safetensors.torch import save_file

from uniformerv2 import CheckpointError, load_weights
from uniformerv2.weights import detect_format
from uniformerv2.zoo import get_pretrained_cfg

WIDTH, LAYERS, PATCH, GRID = 64, 2, 16, 2


def _openai_visual(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random OpenAI CLIP state dict (``visual.*`` plus text tower stand-ins) for the tiny width."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    sd = {
        "visual.class_embedding": rand(WIDTH),
        "visual.positional_embedding": rand(GRID * GRID + 1, WIDTH),
        "visual.conv1.weight": rand(WIDTH, 3, PATCH, PATCH),
        "visual.ln_pre.weight": rand(WIDTH),
        "visual.ln_pre.bias": rand(WIDTH),
        "visual.ln_post.weight": rand(WIDTH),
        "visual.ln_post.bias": rand(WIDTH),
        "visual.proj": rand(WIDTH, 32),
        "logit_scale": torch.tensor(4.6),
        "token_embedding.weight": rand(10, 32),
    }
    for i in range(LAYERS):
        block = f"visual.transformer.resblocks.{i}."
        sd.update(
            {
                block + "attn.in_proj_weight": rand(3 * WIDTH, WIDTH),
                block + "attn.in_proj_bias": rand(3 * WIDTH),
                block + "attn.out_proj.weight": rand(WIDTH, WIDTH),
                block + "attn.out_proj.bias": rand(WIDTH),
                block + "ln_1.weight": rand(WIDTH),
                block + "ln_1.bias": rand(WIDTH),
                block + "ln_2.weight": rand(WIDTH),
                block + "ln_2.bias": rand(WIDTH),
                block + "mlp.c_fc.weight": rand(4 * WIDTH, WIDTH),
                block + "mlp.c_fc.bias": rand(4 * WIDTH),
                block + "mlp.c_proj.weight": rand(WIDTH, 4 * WIDTH),
                block + "mlp.c_proj.bias": rand(WIDTH),
            }
        )
    return sd


def _to_transformers(openai: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI CLIP -> transformers ``CLIPModel`` keys (q/k/v split out of ``in_proj``)."""
    v = {k.removeprefix("visual."): t for k, t in openai.items() if k.startswith("visual.")}
    hf = {
        "vision_model.embeddings.class_embedding": v["class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": v["conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": v["positional_embedding"],
        "vision_model.embeddings.position_ids": torch.arange(GRID * GRID + 1)[None],
        "vision_model.pre_layrnorm.weight": v["ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": v["ln_pre.bias"],
        "vision_model.post_layernorm.weight": v["ln_post.weight"],
        "vision_model.post_layernorm.bias": v["ln_post.bias"],
        "visual_projection.weight": v["proj"].t().contiguous(),
        "text_model.embeddings.token_embedding.weight": openai["token_embedding.weight"],
        "text_projection.weight": torch.zeros(32, 32),
        "logit_scale": openai["logit_scale"],
    }
    for i in range(LAYERS):
        ours, theirs = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        q, k, val = v[ours + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = v[ours + "attn.in_proj_bias"].chunk(3)
        for name, weight, bias in (("q", q, qb), ("k", k, kb), ("v", val, vb)):
            hf[theirs + f"self_attn.{name}_proj.weight"] = weight.contiguous()
            hf[theirs + f"self_attn.{name}_proj.bias"] = bias.contiguous()
        pairs = {
            "attn.out_proj": "self_attn.out_proj",
            "ln_1": "layer_norm1",
            "ln_2": "layer_norm2",
            "mlp.c_fc": "mlp.fc1",
            "mlp.c_proj": "mlp.fc2",
        }
        for a, b in pairs.items():
            for param in ("weight", "bias"):
                hf[theirs + f"{b}.{param}"] = v[ours + f"{a}.{param}"]
    return hf


@pytest.mark.parametrize("overrides", [{}, {"temporal_downsample": True, "local_mhra": "double"}])
def test_transformers_layout_initialises_exactly_like_openai_layout(tmp_path, overrides) -> None:
    openai = _openai_visual()
    torch.save(openai, tmp_path / "ViT-B-16.pt")
    save_file(_to_transformers(openai), str(tmp_path / "model.safetensors"))
    from_openai = make_tiny_model(seed=1, **overrides)
    from_hf = make_tiny_model(seed=1, **overrides)
    report_openai = load_weights(from_openai, tmp_path / "ViT-B-16.pt")
    report_hf = load_weights(from_hf, tmp_path / "model.safetensors")
    assert report_openai.source_format == report_hf.source_format == "clip"
    assert report_openai.missing == report_hf.missing
    a, b = from_openai.state_dict(), from_hf.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(b["blocks.1.attn.in_proj_weight"], openai["visual.transformer.resblocks.1.attn.in_proj_weight"])


def test_transformers_layout_is_detected_as_clip() -> None:
    assert detect_format(_to_transformers(_openai_visual())) == "clip"


def test_unknown_transformers_key_is_refused(tmp_path) -> None:
    hf = _to_transformers(_openai_visual())
    hf["vision_model.encoder.layers.0.self_attn.rotary.weight"] = torch.zeros(2)
    path = tmp_path / "model.safetensors"
    save_file(hf, str(path))
    with pytest.raises(CheckpointError) as info:
        load_weights(make_tiny_model(), path)
    assert str(path) in str(info.value) and "self_attn.rotary.weight" in str(info.value)


def test_missing_value_projection_is_refused(tmp_path) -> None:
    hf = _to_transformers(_openai_visual())
    del hf["vision_model.encoder.layers.1.self_attn.v_proj.bias"]
    path = tmp_path / "model.safetensors"
    save_file(hf, str(path))
    with pytest.raises(CheckpointError, match="layers.1.self_attn.v_proj.bias"):
        load_weights(make_tiny_model(), path)


@pytest.mark.parametrize(
    ("name", "repo"),
    [
        ("clip-vit-b16", "openai/clip-vit-base-patch16"),
        ("clip-vit-l14", "openai/clip-vit-large-patch14"),
        ("clip-vit-l14-336", "openai/clip-vit-large-patch14-336"),
    ],
)
def test_clip_zoo_entries_try_the_transformers_file_first(name, repo) -> None:
    first = get_pretrained_cfg(name).sources[0]
    assert (first.kind, first.repo_id, first.filename) == ("hf", repo, "model.safetensors")
    assert first.cache_name == f"{repo.split('/')[1]}.safetensors"
