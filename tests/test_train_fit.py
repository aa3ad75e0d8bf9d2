"""End-to-end training on CPU with the real ``fit``: learning, resume, outputs, bad videos, CLI.

The data set is synthetic: bright videos are class 1, dark videos class 0 (8 frames, 64x48).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_train_config as tiny_config

import uniformerv2.train.trainer as fit_module
from uniformerv2.cli.main import main as cli_main
from uniformerv2.train import TrainConfig, apply_overrides, fit, get_preset
from uniformerv2.train.data import VideoLoadError
from uniformerv2.weights import from_pretrained

pytestmark = pytest.mark.slow  # end-to-end training runs


def test_fit_learns_brightness_and_writes_outputs(bright_dark: Path, tmp_path: Path) -> None:
    cfg = tiny_config(bright_dark, tmp_path / "run", "optim.epochs=4", "aug.auto_augment=")
    result = fit(cfg)
    losses = [r["train_loss"] for r in result.history]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]
    assert result.history[-1]["val_top1"] == 100.0 and result.best_top1 == 100.0
    assert result.test is not None and result.test["top1"] == 100.0 and result.test["count"] == 4
    out = tmp_path / "run"
    for name in ("last.pt", "best.pt", "metrics.jsonl", "curves.png", "train_config.json", "test_metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3] and {"train_loss", "val_top1", "lr"} <= set(records[0])
    assert TrainConfig.from_dict(json.loads((out / "train_config.json").read_text())) == cfg
    state = torch.load(out / "best.pt", weights_only=True)
    assert state["epoch"] == result.best_epoch and state["best_top1"] == 100.0
    exported = from_pretrained(out / "best_model")
    assert exported.pretrained_cfg["labels"] == ["LABEL_0", "LABEL_1"]
    assert (
        exported.pretrained_cfg["preprocess"].num_frames == 4 and exported.pretrained_cfg["preprocess"].crop_size == 32
    )
    for key, value in state["model"].items():
        assert torch.equal(exported.state_dict()[key], value), key


def test_resume_gives_identical_weights(bright_dark: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = ("optim.epochs=2", "optim.warmup_epochs=1", "data.num_workers=1", "eval.final_test=false")
    straight = tmp_path / "straight"
    fit(tiny_config(bright_dark, straight, *overrides))

    resumed = tmp_path / "resumed"
    real = fit_module.train_one_epoch
    calls = []

    def crash_in_second_epoch(*args, **kwargs):  # noqa: ANN002, ANN003
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "train_one_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_config(bright_dark, resumed, *overrides))
    assert torch.load(resumed / "last.pt", weights_only=True)["epoch"] == 0
    monkeypatch.setattr(fit_module, "train_one_epoch", real)
    fit(tiny_config(bright_dark, resumed, *overrides))  # resume=auto

    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for pid, sa in a["optimizer"]["state"].items():
        for name, tensor in sa.items():
            assert torch.equal(tensor, b["optimizer"]["state"][pid][name]), (pid, name)
    history = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [0, 1]


def test_bad_video_raises_or_is_skipped(bright_dark: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    lines = (bright_dark / "train.csv").read_text().splitlines()[:3] + [f"{tmp_path / 'broken.mp4'},1"]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    common = (f"data.train_list={tmp_path / 'train.csv'}", "data.val_list=", "optim.epochs=1", "eval.final_test=false")
    with pytest.raises(VideoLoadError, match=r"train\.csv:4: cannot load .*broken\.mp4"):
        fit(tiny_config(bright_dark, tmp_path / "strict", *common))
    result = fit(tiny_config(bright_dark, tmp_path / "skip", *common, "data.skip_bad_videos=true"))
    assert result.history[0]["train_skipped"] == 1


def test_frames_lists_with_repeated_augmentation(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    lines = []
    for i in range(4):
        folder = tmp_path / f"clip{i}"
        folder.mkdir()
        for k in range(1, 7):
            image = np.full((48, 64, 3), 40 + 150 * (i % 2), np.uint8) + rng.integers(
                0, 20, (48, 64, 3), dtype=np.uint8
            )
            Image.fromarray(image).save(folder / f"img_{k:05d}.jpg")
        lines.append(f"clip{i} 6 {i % 2}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    cfg = apply_overrides(
        get_preset("debug_tiny"),
        [
            f"data.train_list={tmp_path / 'list.txt'}",
            f"data.val_list={tmp_path / 'list.txt'}",
            f"data.root={tmp_path}",
            "data.format=frames",
            "data.channel_order=BGR",
            "aug.num_samples=2",
            "aug.flip=false",
            "optim.epochs=1",
            "optim.batch_size=2",
            'model.arch={"input_resolution": 32, "patch_size": 16, "width": 64, "layers": 2, "heads": 1, '
            '"n_dim": 64, "n_head": 1, "return_list": [0, 1], "local_mhra": "double", "temporal_downsample": true}',
            "model.backbone_drop_path_rate=0.2",
            "model.drop_path_rate=0.4",
            f"output_dir={tmp_path / 'out'}",
            "progress=false",
        ],
    )
    result = fit(cfg)
    assert result.history[0]["train_top1"] >= 0 and result.test is not None and result.test["count"] == 4
    assert result.model.config.local_mhra == "double" and result.model.config.drop_path_rate == 0.4


def test_cli_train_preset_with_overrides(bright_dark: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "train",
        "--preset",
        "debug_tiny",
        f"data.train_list={bright_dark / 'train.csv'}",
        f"data.val_list={bright_dark / 'val.csv'}",
        f"data.root={bright_dark}",
        f"output_dir={tmp_path / 'cli'}",
        "optim.epochs=1",
        "optim.batch_size=4",
        "progress=false",
    ]
    assert cli_main([*args, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["optim"]["epochs"] == 1 and printed["model"]["num_classes"] == 2
    assert cli_main(args) == 0
    assert (tmp_path / "cli" / "best_model" / "model.safetensors").is_file()
    assert (tmp_path / "cli" / "curves.png").is_file()
    assert cli_main(["train", "--preset", "debug_tiny", "optim.bogus=1"]) == 2
    assert "optim.bogus" in capsys.readouterr().err
