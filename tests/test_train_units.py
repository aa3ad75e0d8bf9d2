"""Training pieces on their own: config, lr schedule, param groups, lists, collate, checkpoints, heads."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model

from uniformerv2.train import checkpoint as ckpt
from uniformerv2.train.builder import init_from_checkpoint
from uniformerv2.train.config import (
    DataConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    load_config,
    per_process_batch,
)
from uniformerv2.train.data import AnnotationError, collate_views, read_annotations
from uniformerv2.train.optim import build_optimizer, group_names, lr_at
from uniformerv2.train.presets import get_preset, list_presets
from uniformerv2.weights import save_pretrained
from uniformerv2.zoo import load_label_map

# ------------------------------------------------------------------------------------- lr schedule


def _closed_form(e: float, base: float, w: float, total: float, start: float = 1e-6, end: float = 1e-6) -> float:
    def cos(x: float) -> float:
        return end + (base - end) * 0.5 * (1 + math.cos(math.pi * (x - w) / (total - w)))

    return start + e * (cos(w) - start) / w if e < w else cos(e)


@pytest.mark.parametrize("warmup", [0.0, 1.0, 5.0])
def test_lr_matches_official_formula(warmup: float) -> None:
    cfg = OptimConfig(base_lr=4e-5, warmup_epochs=warmup, epochs=22)
    for e in [0.0, 0.25, warmup / 2, warmup, warmup + 0.5, 11.0, 21.9, 22.0]:
        assert lr_at(e, cfg) == pytest.approx(_closed_form(e, 4e-5, warmup, 22), rel=1e-12, abs=1e-15)
    assert lr_at(0.0, cfg) == pytest.approx(1e-6 if warmup else 4e-5)
    assert lr_at(warmup, cfg) == pytest.approx(4e-5)
    assert lr_at(22.0, cfg) == pytest.approx(1e-6)


def test_lr_is_monotone_in_each_phase() -> None:
    cfg = OptimConfig(base_lr=1e-5, warmup_epochs=5, epochs=55)
    warm = [lr_at(e / 10, cfg) for e in range(51)]
    decay = [lr_at(5 + e / 10, cfg) for e in range(501)]
    assert warm == sorted(warm) and decay == sorted(decay, reverse=True)


# ------------------------------------------------------------------------------------- param groups


def test_param_groups_follow_official_rules() -> None:
    model = make_tiny_model(local_mhra="double", temporal_downsample=True)
    groups = group_names(model)
    assert "blocks.0.lmhra1.norm.weight" in groups["bn"] and "blocks.1.lmhra2.norm.bias" in groups["bn"]
    for name in ("balance", "class_embedding", "ln_pre.weight", "head.fc.bias", "global_blocks.0.dpe.bias"):
        assert name in groups["no_decay"], name
    for name in (
        "fusion.query",
        "positional_embedding",
        "conv1.weight",
        "global_blocks.0.dpe.weight",
        "head.fc.weight",
    ):
        assert name in groups["decay"], name
    params = dict(model.named_parameters())
    assert params["fusion.query"].ndim == 3
    assert all(params[n].ndim >= 2 for n in groups["decay"]) and all(params[n].ndim == 1 for n in groups["no_decay"])
    assert sum(map(len, groups.values())) == len(params)
    opt = build_optimizer(model, OptimConfig())
    assert {g["group"]: g["weight_decay"] for g in opt.param_groups} == {"bn": 0.0, "no_decay": 0.0, "decay": 0.05}
    assert opt.defaults["eps"] == 1e-8 and opt.defaults["betas"] == (0.9, 0.999)


def test_frozen_backbone_leaves_backbone_out_of_the_optimizer() -> None:
    model = make_tiny_model(frozen=True)
    model.freeze_backbone()
    names = {n for group in group_names(model).values() for n in group}
    assert not any(n.startswith(("blocks.", "conv1", "ln_pre")) for n in names)
    assert "class_embedding" not in names and "positional_embedding" not in names
    assert "fusion.query" in names and "head.fc.weight" in names and "global_blocks.0.attn.in_proj_weight" in names


# ------------------------------------------------------------------------------------- config


def test_presets_match_official_table() -> None:
    assert {
        "k400_b16_f8x224_from_k710",
        "k400_b16_f8x224_from_clip",
        "ssv2_b16_f16x224",
        "k400_l14_frozen_f8x336",
    } <= set(list_presets())
    k710 = get_preset("k400_b16_f8x224_from_k710")
    assert (k710.optim.base_lr, k710.optim.epochs, k710.optim.warmup_epochs, k710.optim.global_batch_size) == (
        2e-6,
        5,
        1,
        256,
    )
    assert k710.model.head == "reinit" and k710.model.init == "uniformerv2-b16-k710-8x224"
    ssv2 = get_preset("ssv2_b16_f16x224")
    assert (ssv2.data.channel_order, ssv2.data.format, ssv2.aug.flip, ssv2.aug.num_samples) == (
        "BGR",
        "frames",
        False,
        2,
    )
    assert (ssv2.model.backbone_drop_path_rate, ssv2.model.drop_path_rate, ssv2.optim.base_lr) == (0.2, 0.4, 4e-5)
    frozen = get_preset("k400_l14_frozen_f8x336")
    assert (
        frozen.model.freeze_backbone
        and frozen.data.crop_size == 336
        and (frozen.eval.test_clips, frozen.eval.test_crops) == (3, 1)
    )


def test_overrides_are_typed_and_checked() -> None:
    cfg = apply_overrides(
        get_preset("debug_tiny"), ["optim.base_lr=2e-4", "aug.flip=false", "data.mean=[0.5,0.5,0.5]", "optim.epochs=7"]
    )
    assert (
        cfg.optim.base_lr == 2e-4
        and cfg.aug.flip is False
        and cfg.data.mean == (0.5, 0.5, 0.5)
        and cfg.optim.epochs == 7
    )
    with pytest.raises(KeyError, match="optim.nope"):
        apply_overrides(cfg, ["optim.nope=1"])
    with pytest.raises(ValueError, match="amp"):
        apply_overrides(cfg, ["optim.amp=fp8"])
    with pytest.raises(ValueError, match="optim.epochs"):
        apply_overrides(cfg, ["optim.epochs=many"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_config_files_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"preset": "ssv2_b16_f16x224", "optim": {"base_lr": 1e-5}, "seed": 3}))
    cfg = load_config(tmp_path / "a.json")
    assert cfg.optim.base_lr == 1e-5 and cfg.seed == 3 and cfg.aug.num_samples == 2
    pytest.importorskip("yaml")
    (tmp_path / "b.yaml").write_text("model:\n  num_classes: 101\noptim:\n  base_lr: 2e-6\n")
    cfg = load_config(tmp_path / "b.yaml")
    assert cfg.model.num_classes == 101 and cfg.optim.base_lr == 2e-6


def test_per_process_batch_from_global_batch() -> None:
    optim = OptimConfig(global_batch_size=256, accum_steps=2)
    assert per_process_batch(optim, 8) == 16
    assert per_process_batch(OptimConfig(batch_size=5), 8) == 5
    with pytest.raises(ValueError, match="divisible"):
        per_process_batch(OptimConfig(global_batch_size=100), 8)


# ------------------------------------------------------------------------------------- lists and collate


def test_video_list_parsing_and_bad_lines(tmp_path: Path) -> None:
    for name in ("a.mp4", "b c.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "ok.csv").write_text("a.mp4,1\n\nb c.mp4,0\n")
    data = DataConfig(root=str(tmp_path), separator=",")
    items = read_annotations(tmp_path / "ok.csv", data, num_classes=2)
    assert [(Path(i.path).name, i.label) for i in items] == [("a.mp4", 1), ("b c.mp4", 0)]
    (tmp_path / "bad.csv").write_text("a.mp4,1\na.mp4,7\nmissing.mp4,0\na.mp4\n")
    with pytest.raises(AnnotationError) as err:
        read_annotations(tmp_path / "bad.csv", data, num_classes=2)
    text = str(err.value)
    assert "3 bad line(s)" in text and "bad.csv:2: label 7 is outside [0, 2)" in text
    assert "bad.csv:3: file not found" in text and "missing.mp4" in text and "bad.csv:4:" in text


def test_frame_list_parsing(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "list.txt").write_text("v1 37 5\nv2 10 1\nv1 0 1\n")
    data = DataConfig(root=str(tmp_path), format="frames")
    with pytest.raises(AnnotationError) as err:
        read_annotations(tmp_path / "list.txt", data, num_classes=174)
    assert "list.txt:2: directory not found" in str(err.value) and "list.txt:3: frame count 0" in str(err.value)
    (tmp_path / "list.txt").write_text("v1 37 5\n")
    [item] = read_annotations(tmp_path / "list.txt", data, num_classes=174)
    assert (Path(item.path).name, item.num_frames, item.label) == ("v1", 37, 5)


def test_collate_flattens_repeated_augmentation() -> None:
    items = [(torch.full((2, 3, 4, 8, 8), float(i)), i) for i in range(3)]
    batch = collate_views([*items, None])
    assert batch.inputs.shape == (6, 3, 4, 8, 8) and batch.labels.tolist() == [0, 0, 1, 1, 2, 2] and batch.skipped == 1
    assert batch.inputs[2].unique().item() == 1.0
    per_video = collate_views(items, flatten=False)
    assert per_video.inputs.shape == (3, 2, 3, 4, 8, 8) and per_video.labels.tolist() == [0, 1, 2]
    assert collate_views([None, None]).inputs.shape[0] == 0


# ------------------------------------------------------------------------------------- checkpoints


def test_state_round_trip_with_weights_only(tmp_path: Path) -> None:
    model = make_tiny_model()
    opt = build_optimizer(model, OptimConfig())
    model(torch.randn(1, 3, 4, 32, 32)).sum().backward()
    opt.step()
    random.seed(5)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "best_top1": 50.0,
        "rng": ckpt.rng_state(),
        "config": TrainConfig().to_json(),
    }
    ckpt.save_state(tmp_path / "last.pt", state)
    expected = random.random()
    loaded = torch.load(tmp_path / "last.pt", weights_only=True)
    assert loaded["epoch"] == 3 and json.loads(loaded["config"])["seed"] == 6666
    torch.testing.assert_close(loaded["model"]["fusion.query"], model.state_dict()["fusion.query"], rtol=0, atol=0)
    assert loaded["optimizer"]["state"][0]["step"] == 1
    ckpt.set_rng_state(loaded["rng"])
    assert random.random() == expected


def test_crash_while_saving_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt.save_state(tmp_path / "last.pt", {"epoch": 1})
    real_save = torch.save

    def crash(obj: object, f: str) -> None:
        with open(f, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_state(tmp_path / "last.pt", {"epoch": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert ckpt.load_state(tmp_path / "last.pt")["epoch"] == 1
    assert ckpt.find_resume("auto", tmp_path) == tmp_path / "last.pt" and ckpt.find_resume("", tmp_path) is None


# ------------------------------------------------------------------------------------- head policies


def test_head_policies_reinit_map_keep(tmp_path: Path) -> None:
    source = make_tiny_model(num_classes=710, seed=1)
    path = save_pretrained(source, tmp_path / "k710")
    order = load_label_map("kinetics710_official", "kinetics400_alphabetical")
    sd = source.state_dict()

    mapped = make_tiny_model(num_classes=400, seed=2)
    init_from_checkpoint(mapped, str(path), "map", "kinetics710_official:kinetics400_alphabetical")
    assert torch.equal(mapped.head.fc.weight, sd["head.fc.weight"][order])
    assert torch.equal(mapped.head.fc.bias, sd["head.fc.bias"][order])
    assert torch.equal(mapped.fusion.query, source.fusion.query)

    (tmp_path / "map.json").write_text(json.dumps([709, 0, 5]))
    small = make_tiny_model(num_classes=3, seed=2)
    init_from_checkpoint(small, str(path), "map", str(tmp_path / "map.json"))
    assert torch.equal(small.head.fc.weight, sd["head.fc.weight"][[709, 0, 5]])

    fresh = make_tiny_model(num_classes=400, seed=2)
    before = fresh.head.fc.weight.clone()
    init_from_checkpoint(fresh, str(path), "reinit")
    assert torch.equal(fresh.head.fc.weight, before) and torch.equal(fresh.fusion.query, source.fusion.query)

    with pytest.raises(Exception, match="keep"):
        init_from_checkpoint(make_tiny_model(num_classes=400), str(path), "keep")
    kept = make_tiny_model(num_classes=710, seed=3)
    init_from_checkpoint(kept, str(path), "keep")
    assert torch.equal(kept.head.fc.weight, sd["head.fc.weight"])


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs" / "train").glob("*.yaml")), ids=lambda p: p.name
)
def test_example_config_files_load(path: Path) -> None:
    pytest.importorskip("yaml")
    cfg = load_config(path)
    assert cfg.data.train_list and cfg.output_dir.startswith("runs/")


# ------------------------------------------------------------------------------------- checkpoint schedule


def test_checkpoint_schedule_by_steps_and_by_time() -> None:
    from uniformerv2.train.trainer import CheckpointSchedule

    by_steps = CheckpointSchedule(every_steps=3, every_minutes=15.0)
    assert [by_steps.due(step) for step in range(1, 8)] == [False, False, True, False, False, True, False]
    now = [0.0]
    by_time = CheckpointSchedule(every_steps=0, every_minutes=1.0, clock=lambda: now[0])
    due = []
    for _ in range(6):
        now[0] += 25.0  # a step every 25 s: due after 60 s of work since the last checkpoint
        due.append(by_time.due(0))
    assert due == [False, False, True, False, False, True]
    assert not any(CheckpointSchedule(every_steps=0, every_minutes=0.0).due(s) for s in range(1, 10))


def test_no_global_blocks_needs_no_dropout_list() -> None:
    from uniformerv2.train.builder import build_model

    cfg = apply_overrides(
        get_preset("debug_tiny"),
        [
            'model.arch={"return_list": [], "input_resolution": 32, '
            '"patch_size": 16, "width": 64, "layers": 2, "heads": 1, '
            '"n_dim": 64, "n_head": 1}'
        ],
    )
    model = build_model(cfg)
    assert model.config.n_layers == 0 and model.config.mlp_dropout == ()
    assert model(torch.randn(2, 3, 4, 32, 32)).shape == (2, 2)


# ------------------------------------------------------------------------------------- bad videos


def test_truncated_video_is_skipped_or_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from videogen import make_video, truncate

    from uniformerv2.train.data import Annotation, VideoListDataset
    from uniformerv2.video import open_video

    cut = truncate(make_video(tmp_path / "full.mkv", 200, gop=10), 0.8, tmp_path / "cut.mkv")
    with open_video(cut) as reader:
        assert 0 < reader.num_frames < 200 and not reader.complete  # the decoder sees the cut
    items = [Annotation(str(cut), 1, 0, "list.csv:1")]
    preprocess = DataConfig(num_frames=4, crop_size=32).preprocess()
    skipping = VideoListDataset(items, preprocess, "train", skip_bad_videos=True)
    assert skipping[0] is None
    strict = VideoListDataset(items, preprocess, "train")
    with caplog.at_level("WARNING"):
        views, label = strict[0]
    assert views.shape == (1, 3, 4, 32, 32) and label == 1
    assert any(
        "list.csv:1" in r.message and "cut.mkv" in r.message and "truncated" in r.message for r in caplog.records
    )


def test_param_groups_follow_the_models_no_weight_decay() -> None:
    model = make_tiny_model()
    official = model.no_weight_decay()
    model.no_weight_decay = lambda: official | {"fusion.query"}  # type: ignore[method-assign]
    groups = group_names(model)
    assert "fusion.query" in groups["no_decay"] and "fusion.query" not in groups["decay"]
    assert set(groups["no_decay"]) == official | {"fusion.query"}


def test_dense_sampling_reaches_the_training_clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from videogen import make_video

    import uniformerv2.train.data as data_module

    cfg = apply_overrides(get_preset("debug_tiny"), ["data.sampling=dense", "data.frame_interval=3"])
    preprocess = cfg.data.preprocess()
    assert (preprocess.sampling, preprocess.frame_interval, preprocess.num_frames) == ("dense", 3, 4)
    with pytest.raises(ValueError, match="sampling"):
        apply_overrides(cfg, ["data.sampling=sparse"])
    drawn: list[list[int]] = []
    real = data_module.sample_indices

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        drawn.append(list(real(*args, **kwargs)))
        return drawn[-1]

    monkeypatch.setattr(data_module, "sample_indices", spy)
    video = make_video(tmp_path / "v.mp4", 48)
    items = [data_module.Annotation(str(video), 0, 0, "list.csv:1")]
    for mode in ("train", "val"):
        data_module.VideoListDataset(items, preprocess, mode)[0]
    assert len(drawn) == 2 and all(b - a == 3 for clip in drawn for a, b in zip(clip[:-1], clip[1:], strict=True)), (
        drawn
    )
