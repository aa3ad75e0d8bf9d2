"""A checkpoint loaded by path uses the architecture, preprocessing and labels stored inside it.

Each file here is written from a tiny model whose architecture tensor shapes cannot tell: backbone
heads of width 32 (not 64) and global blocks after blocks 0 and 2 (not the last two). Loading
must reproduce the source model's logits exactly.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
import yaml
from conftest import make_tiny_model

import uniformerv2
from uniformerv2 import CheckpointError
from uniformerv2.train.checkpoint import save_state
from uniformerv2.train.config import get_preset
from uniformerv2.weights import from_ours
from uniformerv2.zoo import load_labels

#: The architecture a file must store: 3 blocks, 2 heads of width 32, global blocks after 0 and 2.
ARCH = dict(layers=3, heads=2, n_head=2, return_list=(0, 2))
LABELS = ["archery", "bowling", "cooking", "dancing", "eating"]


def _source_model(**extra: object) -> uniformerv2.UniFormerV2:
    return make_tiny_model(seed=3, **{**ARCH, **extra})


def _clip(frames: int = 4) -> torch.Tensor:
    return torch.randn(2, 3, frames, 32, 32, generator=torch.Generator().manual_seed(1))


def _assert_same_logits(loaded: uniformerv2.UniFormerV2, source: uniformerv2.UniFormerV2, frames: int = 4) -> None:
    with torch.no_grad():
        torch.testing.assert_close(loaded(_clip(frames)), source(_clip(frames)), rtol=0, atol=0)


def test_training_checkpoint_uses_its_stored_config(tmp_path) -> None:
    labels_file = tmp_path / "classes.txt"
    labels_file.write_text("\n".join(LABELS) + "\n")
    cfg = get_preset("debug_tiny")
    cfg.model.num_classes = 5
    cfg.model.labels_file = str(labels_file)
    cfg.model.arch = dict(
        input_resolution=32, patch_size=16, width=64, layers=3, heads=2, n_dim=64, n_head=2, return_list=[0, 2]
    )
    cfg.data.num_frames, cfg.data.crop_size, cfg.data.channel_order = 6, 32, "BGR"
    cfg.eval.test_clips, cfg.eval.test_crops = 3, 1
    source = _source_model()
    path = save_state(tmp_path / "run" / "best.pt", {"model": source.state_dict(), "epoch": 2, "config": cfg.to_json()})
    loaded = uniformerv2.load_model(path)
    assert loaded.config.heads == 2 and loaded.config.return_list == (0, 2)
    _assert_same_logits(loaded, source, frames=6)
    pre = loaded.pretrained_cfg["preprocess"]
    assert (pre.num_frames, pre.crop_size, pre.channel_order, pre.num_clips, pre.num_crops) == (6, 32, "BGR", 3, 1)
    assert loaded.pretrained_cfg["labels"] == LABELS


def test_training_checkpoint_with_unreadable_labels_file_warns(tmp_path, caplog) -> None:
    cfg = get_preset("debug_tiny")
    cfg.model.num_classes, cfg.model.labels_file = 5, str(tmp_path / "gone.txt")
    cfg.model.arch = dict(
        input_resolution=32, patch_size=16, width=64, layers=3, heads=2, n_dim=64, n_head=2, return_list=[0, 2]
    )
    source = _source_model()
    path = save_state(tmp_path / "last.pt", {"model": source.state_dict(), "config": cfg.to_json()})
    with caplog.at_level(logging.WARNING):
        loaded = uniformerv2.load_model(path)
    assert "gone.txt" in caplog.text
    assert loaded.pretrained_cfg["labels"] == [f"LABEL_{i}" for i in range(5)]
    _assert_same_logits(loaded, source)


def _official_yaml(return_list: list[int], n_head: int, classes: int = 5) -> str:
    """The parts of the official trainer's ``cfg.dump()`` that describe the model and its test."""
    return yaml.safe_dump(
        {
            "UNIFORMERV2": {
                "BACKBONE": "uniformerv2_tiny",
                "N_LAYERS": len(return_list),
                "N_DIM": 64,
                "N_HEAD": n_head,
                "MLP_FACTOR": 4.0,
                "RETURN_LIST": return_list,
                "DW_REDUCTION": 1.5,
                "TEMPORAL_DOWNSAMPLE": False,
                "NO_LMHRA": True,
                "DOUBLE_LMHRA": True,
                "FROZEN": False,
                "MLP_DROPOUT": [0.5] * len(return_list),
            },
            "MODEL": {"NUM_CLASSES": classes},
            "DATA": {"NUM_FRAMES": 6, "TEST_CROP_SIZE": 32, "MEAN": [0.45] * 3, "STD": [0.225] * 3},
            "TEST": {"NUM_ENSEMBLE_VIEWS": 2, "NUM_SPATIAL_CROPS": 1, "DATASET": "kinetics_sparse"},
        }
    )


def test_official_cfg_with_non_trailing_return_list_and_other_head_width(tmp_path) -> None:
    source = _source_model(heads=1)  # backbone heads come from the official factory: width / 64
    path = tmp_path / "best.pyth"
    sd = from_ours(source.state_dict(), "official")
    torch.save({"epoch": 4, "model_state": sd, "cfg": _official_yaml([0, 2], n_head=2)}, path)
    loaded = uniformerv2.load_model(path)
    assert loaded.config.return_list == (0, 2) and loaded.config.n_head == 2
    _assert_same_logits(loaded, source, frames=6)
    pre = loaded.pretrained_cfg["preprocess"]
    assert (pre.num_frames, pre.crop_size, pre.num_clips, pre.num_crops) == (6, 32, 2, 1)


def test_official_cfg_that_contradicts_the_tensors_is_an_error(tmp_path) -> None:
    source = _source_model(heads=1)
    path = tmp_path / "best.pyth"
    text = _official_yaml([0, 2], n_head=2).replace("NO_LMHRA: true", "NO_LMHRA: false")
    torch.save({"model_state": from_ours(source.state_dict(), "official"), "cfg": text}, path)
    with pytest.raises(CheckpointError) as info:
        uniformerv2.load_model(path)
    assert str(path) in str(info.value) and "local_mhra='double'" in str(info.value)


_MM_CFG = """
default_scope = 'mmaction'
num_frames = 6
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='UniFormerV2',
        input_resolution=32,
        patch_size=16,
        width=64,
        layers=3,
        heads=2,
        t_size=num_frames,
        dw_reduction=1.5,
        backbone_drop_path_rate=0.,
        temporal_downsample=False,
        no_lmhra=True,
        double_lmhra=True,
        return_list=[0, 2],
        n_layers=2,
        n_dim=64,
        n_head=2,
        mlp_factor=4.,
        drop_path_rate=0.,
        mlp_dropout=[0.5, 0.5],
        clip_pretrained=True,
        pretrained='ViT-B/16'),
    cls_head=dict(
        type='TimeSformerHead', dropout_ratio=0.5, num_classes=5, in_channels=64, average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor', mean=[114.75, 114.75, 114.75], std=[57.375, 57.375, 57.375],
        format_shape='NCTHW'))
file_client_args = dict(io_backend='disk')
test_pipeline = [
    dict(type='DecordInit', **file_client_args),
    dict(type='UniformSample', clip_len=num_frames, num_clips=2, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 32)),
    dict(type='ThreeCrop', crop_size=32),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
exec_would_be_here = __import__('os').system('touch SHOULD_NOT_EXIST')
"""


def test_mmaction2_meta_cfg_is_parsed_not_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = _source_model()
    path = tmp_path / "epoch_5.pth"
    sd = from_ours(source.state_dict(), "mmaction2")
    torch.save({"meta": {"epoch": 5, "cfg": _MM_CFG}, "state_dict": sd}, path)
    loaded = uniformerv2.load_model(path)
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()
    assert loaded.config.heads == 2 and loaded.config.return_list == (0, 2)
    _assert_same_logits(loaded, source, frames=6)
    pre = loaded.pretrained_cfg["preprocess"]
    assert (pre.num_frames, pre.crop_size, pre.num_clips, pre.num_crops) == (6, 32, 2, 3)


def test_file_without_stored_config_warns_about_assumptions(tmp_path, caplog) -> None:
    source = _source_model()
    path = tmp_path / "plain.pyth"
    torch.save(from_ours(source.state_dict(), "official"), path)
    with caplog.at_level(logging.WARNING):
        guessed = uniformerv2.load_model(path)
    assert "assuming heads=1" in caplog.text and "return_list" in caplog.text and str(path) in caplog.text
    assert guessed.config.return_list == (1, 2)  # what the shapes suggest: the last blocks
    given = uniformerv2.load_model(path, heads=2, n_head=2, return_list=(0, 2))
    _assert_same_logits(given, source)


def test_released_layout_loads_without_assumption_warning(tmp_path, caplog) -> None:
    with torch.device("meta"):
        model = uniformerv2.create_model("uniformerv2_b16", num_classes=400)
    from uniformerv2.weights.stored import describe_checkpoint

    with caplog.at_level(logging.WARNING):
        described = describe_checkpoint(model.state_dict(), "official", {}, "k400.pyth")
    assert "assuming" not in caplog.text
    assert described.config == model.config
    assert described.labels == load_labels("kinetics400")


# ------------------------------------------------------------------------ MMAction2 K710 label orders


@pytest.mark.parametrize(
    ("name", "meta", "label_set"),
    [
        ("uniformerv2-base-p16-res224_clip-pre_u8_kinetics710-rgb_20221219-77d34f81.pth", {}, "kinetics710_official"),
        ("uniformerv2-base-p16-res224_clip-pre_u8_kinetics710-rgb_20230612-63cdbad9.pth", {}, "kinetics710_mmaction2"),
        ("epoch_20.pth", {"time": "20230305_101010"}, "kinetics710_official"),
        ("epoch_20.pth", {"time": "20230920_101010"}, "kinetics710_mmaction2"),
    ],
)
def test_mmaction2_k710_label_order_follows_the_file_date(tmp_path, name, meta, label_set) -> None:
    source = make_tiny_model(num_classes=710)
    path = tmp_path / name
    torch.save({"state_dict": from_ours(source.state_dict(), "mmaction2"), "meta": meta}, path)
    loaded = uniformerv2.load_model(path)
    assert loaded.pretrained_cfg["labels"] == load_labels(label_set)


def test_mmaction2_k710_without_date_gets_no_guessed_names(tmp_path, caplog) -> None:
    source = make_tiny_model(num_classes=710)
    path = tmp_path / "k710.pth"
    torch.save({"state_dict": from_ours(source.state_dict(), "mmaction2")}, path)
    with caplog.at_level(logging.WARNING):
        loaded = uniformerv2.load_model(path)
    assert loaded.pretrained_cfg["labels"] == [f"LABEL_{i}" for i in range(710)]
    assert "2023-06" in caplog.text and "kinetics710_official" in caplog.text


def test_unusable_training_config_falls_back_to_the_tensors(tmp_path) -> None:
    """A stored training config that is not a TrainConfig is skipped with a warning; the tensors still load."""
    source = _source_model()
    path = save_state(tmp_path / "best.pt", {"model": source.state_dict(), "config": json.dumps({"model": 3})})
    loaded = uniformerv2.load_model(path, heads=2, n_head=2, return_list=(0, 2))
    _assert_same_logits(loaded, source)
