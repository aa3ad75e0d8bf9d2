"""Checkpoint formats: detection, conversion round trips, CLIP initialisation, strict loading."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
import torch
from conftest import random_clip as video
from conftest import randomise
from conftest import tiny_config as tiny
from torch import nn

import uniformerv2
from uniformerv2 import CheckpointError, UniFormerV2, load_weights
from uniformerv2.weights import (
    detect_format,
    from_ours,
    infer_config,
    label_permutation,
    permute_head,
    read_state_dict,
    save_pretrained,
    to_ours,
)
from uniformerv2.zoo import load_label_map, load_labels


def official_file(tmp_path, model: UniFormerV2, wrapped: bool = False):
    sd = from_ours(model.state_dict(), "official")
    path = tmp_path / "official.pyth"
    torch.save({"epoch": 3, "model_state": sd, "cfg": "{}"} if wrapped else sd, path)
    return path


@pytest.mark.parametrize(
    "config",
    [tiny(), tiny(local_mhra="double", temporal_downsample=True), tiny(frozen=True), tiny(local_mhra="single")],
)
def test_official_round_trip_is_bit_identical(tmp_path, config) -> None:
    model = randomise(UniFormerV2(config)).eval()
    path = official_file(tmp_path, model, wrapped=True)
    raw = read_state_dict(path)
    assert detect_format(raw) == "official" and all(k.startswith("backbone.") for k in raw)
    back = from_ours(to_ours(raw), "official")
    assert back.keys() == raw.keys() and all(torch.equal(back[k], raw[k]) for k in raw)
    loaded = uniformerv2.load_model(path, heads=2, n_head=2)  # head count is not stored in tensor shapes
    assert loaded.config.local_mhra == config.local_mhra and loaded.config.frozen == config.frozen
    with torch.no_grad():
        assert torch.equal(loaded(video(t=4)), model(video(t=4)))


def test_official_key_names() -> None:
    keys = set(from_ours(UniFormerV2(tiny(local_mhra="double")).state_dict(), "official"))
    for key in (
        "backbone.transformer.temporal_cls_token",
        "backbone.transformer.balance",
        "backbone.transformer.resblocks.0.lmhra1.pos_embed.0.running_mean",
        "backbone.transformer.resblocks.2.lmhra2.pos_embed.3.weight",
        "backbone.transformer.dpe.1.weight",
        "backbone.transformer.dec.0.ln_3.bias",
        "backbone.transformer.proj.0.weight",
        "backbone.transformer.proj.2.bias",
        "backbone.conv1.weight",
        "backbone.ln_pre.weight",
    ):
        assert key in keys, key


def test_mmaction2_to_ours_with_label_permutation(tmp_path) -> None:
    """An official K400 head re-ordered to MMAction2's alphabetical order predicts the same label -> score."""
    official = load_labels("kinetics400")
    alphabetical = load_labels("kinetics400_alphabetical")
    order = load_label_map("kinetics710_official", "kinetics400_alphabetical")  # rows of the official head
    assert sorted(order) == list(range(400))
    model = randomise(UniFormerV2(tiny(num_classes=400))).eval()
    mm = {"state_dict": from_ours(permute_head(model.state_dict(), order), "mmaction2"), "meta": {"epoch": 1}}
    mm["state_dict"]["data_preprocessor.mean"] = torch.tensor([114.75] * 3)
    path = tmp_path / "mm.pth"
    torch.save(mm, path)
    assert {"cls_head.fc_cls.weight", "backbone.transformer.norm.bias"} <= set(mm["state_dict"])
    loaded = uniformerv2.load_model(path, heads=2, n_head=2)
    assert loaded.pretrained_cfg["labels"] == alphabetical
    with torch.no_grad():
        ref, got = model(video()).softmax(-1), loaded(video()).softmax(-1)
    for k in (0, 17, 399):
        name = alphabetical[k]
        torch.testing.assert_close(got[:, k], ref[:, order[k]])
        assert official[order[k]] == name or name not in official  # same class, possibly other wording


def test_label_permutation_by_name() -> None:
    assert label_permutation(["a", "b", "c"], ["c", "a", "b"]) == [2, 0, 1]
    with pytest.raises(CheckpointError, match="do not match"):
        label_permutation(["a", "b"], ["a", "z"])


def _clip_state_dict(model: UniFormerV2) -> dict[str, torch.Tensor]:
    """An OpenAI-CLIP-style visual state dict (2-D patch kernel, ln_post, proj) from a model's backbone."""
    sd = {}
    for key, value in model.state_dict().items():
        if key.startswith(("blocks.", "conv1", "class_embedding", "positional_embedding", "ln_pre")):
            if "lmhra" in key:
                continue
            key = key.replace("blocks.", "transformer.resblocks.", 1)
            sd["visual." + key] = value[:, :, value.shape[2] // 2] if key == "conv1.weight" else value
    sd["visual.ln_post.weight"] = torch.ones(64)
    sd["visual.ln_post.bias"] = torch.zeros(64)
    sd["visual.proj"] = torch.randn(64, 32)
    sd["logit_scale"] = torch.tensor(4.6)
    return sd


def _module_tree(sd: dict[str, torch.Tensor]) -> nn.Module:
    """A module hierarchy whose state_dict keys are exactly ``sd``'s (as in OpenAI's TorchScript CLIP files)."""
    root = nn.Module()
    for key, value in sd.items():
        *path, leaf = key.split(".")
        node = root
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        node.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
    return root


def test_clip_initialisation_inflates_stem_in_the_centre(tmp_path) -> None:
    source = randomise(UniFormerV2(tiny()))
    clip = _clip_state_dict(source)
    path = tmp_path / "vit_b16.pth"
    torch.save({k.removeprefix("visual."): v for k, v in clip.items() if k.startswith("visual.")}, path)
    model = UniFormerV2(tiny(temporal_downsample=True, local_mhra="double"))
    report = load_weights(model, path)
    assert report.source_format == "clip"
    assert any("global_blocks" in k for k in report.missing) and not any(
        k.startswith("blocks.0.attn") for k in report.missing
    )
    w = model.conv1.weight
    assert w.shape[2] == 3
    assert torch.equal(w[:, :, 1], clip["visual.conv1.weight"]) and not w[:, :, 0].any() and not w[:, :, 2].any()
    assert torch.equal(model.blocks[1].mlp.c_fc.weight, clip["visual.transformer.resblocks.1.mlp.c_fc.weight"])


def test_clip_initialised_model_outputs_half_the_clip_class_token(tmp_path) -> None:
    """At step 0 the video model is CLIP plus identity blocks (official §1.6)."""
    source = randomise(UniFormerV2(tiny())).eval()
    path = tmp_path / "clip.pt"
    torch.save(_clip_state_dict(source), path)
    model = UniFormerV2(tiny()).eval()
    load_weights(model, path)
    with torch.no_grad():
        frames = source.forward_tokens(video())["class_tokens"]
        torch.testing.assert_close(model.forward_features(video()), 0.5 * frames.mean(1))


def test_torchscript_clip_archive_loads_like_openai_release(tmp_path) -> None:
    """OpenAI's CLIP ``.pt`` files are TorchScript archives; their tensors are read without unpickling
    Python objects."""
    source = randomise(UniFormerV2(tiny())).eval()
    path = tmp_path / "ViT-B-16.pt"
    torch.jit.script(_module_tree(_clip_state_dict(source))).save(str(path))
    assert set(read_state_dict(path)) == set(_clip_state_dict(source))
    model = UniFormerV2(tiny()).eval()
    assert load_weights(model, path).source_format == "clip"
    with torch.no_grad():
        frames = source.forward_tokens(video())["class_tokens"]
        torch.testing.assert_close(model.forward_features(video()), 0.5 * frames.mean(1))


def test_strict_loading_lists_problems(tmp_path) -> None:
    model = UniFormerV2(tiny())
    sd = model.state_dict()
    broken = {k: v for k, v in sd.items() if k != "blocks.0.ln_1.weight"}
    broken["blocks.0.attn.in_proj_weight"] = torch.zeros(3, 3)
    broken["global_blocks.0.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_weights(UniFormerV2(tiny()), broken)
    message = str(info.value)
    assert "missing (1): blocks.0.ln_1.weight" in message
    assert "unexpected (1): global_blocks.0.extra" in message
    assert "blocks.0.attn.in_proj_weight (3, 3) vs (192, 64)" in message
    assert "\n" not in message


def test_wrong_architecture_is_refused(tmp_path) -> None:
    path = official_file(tmp_path, UniFormerV2(tiny(width=128, n_dim=128, heads=2, n_head=2)))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_weights(UniFormerV2(tiny()), path)


def test_changing_num_classes_reinitialises_head(tmp_path, caplog) -> None:
    model = randomise(UniFormerV2(tiny()))
    path = official_file(tmp_path, model)
    with caplog.at_level(logging.WARNING):
        other = uniformerv2.load_model(path, num_classes=9)
    assert "head re-initialised" in caplog.text
    assert other.head.fc.weight.shape == (9, 64)
    assert torch.equal(other.blocks[0].attn.in_proj_weight, model.blocks[0].attn.in_proj_weight)


class Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_unsafe_pickle_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model_state": {"x": torch.zeros(1)}, "hook": Evil()}, f)
    torch.save({"model_state": {"x": torch.zeros(1)}, "hook": Evil()}, tmp_path / "evil2.pth")
    for p in (path, tmp_path / "evil2.pth"):
        with pytest.raises(CheckpointError, match="refused, the file needs arbitrary unpickling"):
            read_state_dict(p)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_unreadable_files(tmp_path, content) -> None:
    path = tmp_path / "bad.pyth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        read_state_dict(path)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_state_dict(tmp_path / "missing.pyth")


def test_our_format_round_trip(tmp_path) -> None:
    model = randomise(UniFormerV2(tiny(local_mhra="double", temporal_downsample=True)))
    model.pretrained_cfg = {"labels": list("abcde"), "preprocess": uniformerv2.PreprocessConfig(num_frames=4)}
    save_pretrained(model.eval(), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["id2label"]["4"] == "e" and config["label2id"]["a"] == 0 and config["num_frames"] == 4
    assert config["architecture"]["local_mhra"] == "double"
    assert "pipeline_tag: video-classification" in (tmp_path / "m" / "README.md").read_text()
    loaded = uniformerv2.load_model(tmp_path / "m")
    assert loaded.pretrained_cfg["labels"] == list("abcde")
    with torch.no_grad():
        assert torch.equal(loaded(video(t=4)), model(video(t=4)))
    assert not list((tmp_path / "m").glob("*.tmp"))


def test_infer_config_recovers_every_variant() -> None:
    for name in uniformerv2.model.list_variants():
        with torch.device("meta"):
            model = uniformerv2.create_model(name)
        inferred = infer_config(model.state_dict()).to_dict()
        expected = model.config.to_dict()
        for training_only in ("backbone_drop_path_rate", "drop_path_rate", "mlp_dropout", "cls_dropout"):
            inferred.pop(training_only), expected.pop(training_only)
        assert inferred == expected, name


def test_unknown_model_name_suggests() -> None:
    with pytest.raises(KeyError, match="did you mean uniformerv2-b16-k400-k710-8x224"):
        uniformerv2.load_model("uniformerv2-b16-k400-k710-8x22")
