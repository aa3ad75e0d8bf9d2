"""The official model's reference outputs (../shared/golden) reproduced from its checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import uniformerv2
from uniformerv2 import UniFormerV2, UniFormerV2Config, load_weights

GOLDEN = Path(__file__).resolve().parent / "assets" / "golden"
CASES = json.loads((GOLDEN / "cases.json").read_text())


def _case(name: str) -> tuple[dict, dict, dict]:
    ckpt = torch.load(GOLDEN / f"{name}.pyth", weights_only=True)
    io = torch.load(GOLDEN / f"{name}.io.pt", weights_only=True)
    return CASES[name], ckpt, io


@pytest.mark.parametrize("name", sorted(CASES))
def test_features_match_official(name: str) -> None:
    kwargs, _, io = _case(name)
    model = UniFormerV2(UniFormerV2Config.from_official_kwargs(kwargs)).eval()
    report = load_weights(model, GOLDEN / f"{name}.pyth")  # strict: every key used, none missing
    assert report.source_format == "official" and not report.missing and not report.reinitialised
    with torch.no_grad():
        features = model.forward_features(io["input"])
    assert features.shape == io["features"].shape
    torch.testing.assert_close(features, io["features"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_logits_are_official_head_of_features(name: str) -> None:
    """logits = Linear(Dropout(LayerNorm(features))) with the checkpoint's ``transformer.proj`` tensors."""
    kwargs, ckpt, io = _case(name)
    sd = ckpt["model_state"]
    norm = F.layer_norm(
        io["features"],
        io["features"].shape[-1:],
        sd["backbone.transformer.proj.0.weight"],
        sd["backbone.transformer.proj.0.bias"],
        eps=1e-5,
    )
    expected = norm @ sd["backbone.transformer.proj.2.weight"].T + sd["backbone.transformer.proj.2.bias"]
    model = UniFormerV2(UniFormerV2Config.from_official_kwargs(kwargs)).eval()
    load_weights(model, GOLDEN / f"{name}.pyth")
    with torch.no_grad():
        logits = model(io["input"])
    assert logits.shape == io["logits"].shape == (kwargs["batch"], kwargs["num_classes"])
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stored_golden_logits(name: str) -> None:
    """The official forward's logits (head LayerNorm applied), loaded through the public API."""
    kwargs, _, io = _case(name)
    model = uniformerv2.load_model(GOLDEN / f"{name}.pyth")
    with torch.no_grad():
        torch.testing.assert_close(model(io["input"]), io["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_load_model_infers_architecture(name: str) -> None:
    kwargs, _, io = _case(name)
    model = uniformerv2.load_model(GOLDEN / f"{name}.pyth")
    expected = UniFormerV2Config.from_official_kwargs(kwargs)
    for field in (
        "width",
        "layers",
        "heads",
        "patch_size",
        "input_resolution",
        "temporal_downsample",
        "local_mhra",
        "return_list",
        "n_dim",
        "n_head",
        "num_classes",
        "frozen",
    ):
        assert getattr(model.config, field) == getattr(expected, field), field
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(io["input"]), io["features"], atol=1e-4, rtol=0)


def test_batch_elements_are_independent() -> None:
    """Each clip's output equals the output of the clip alone (the official code mixes clips when T differs)."""
    kwargs, _, io = _case("ssv2_style")
    model = uniformerv2.load_model(GOLDEN / "ssv2_style.pyth")
    with torch.no_grad():
        alone = torch.cat([model.forward_features(io["input"][i : i + 1]) for i in range(io["input"].shape[0])])
    torch.testing.assert_close(alone, io["features"], atol=1e-4, rtol=0)
