"""Named recipes: the official fine-tuning runs of §4.5 as :class:`TrainConfig` presets.

Global batch = official ``TRAIN.BATCH_SIZE x NUM_SHARDS`` videos (``TRAIN.BATCH_SIZE`` is per
machine). ``uniformerv2 train --list-presets`` prints them; docs/training.md has the table.
"""

from __future__ import annotations

from collections.abc import Callable

from uniformerv2.train.config import (
    AugConfig,
    DataConfig,
    EvalConfig,
    HeadPolicy,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

__all__ = ["PRESETS", "list_presets", "get_preset"]


def _kinetics(classes: int, init: str, head: HeadPolicy, label_map: str = "") -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(name="uniformerv2_b16", init=init, head=head, label_map=label_map, num_classes=classes),
        data=DataConfig(separator=",", num_frames=8, crop_size=224),
        optim=OptimConfig(base_lr=2e-6, warmup_epochs=1, epochs=5, global_batch_size=256),
        eval=EvalConfig(test_clips=4, test_crops=3),
    )


def _k710_map(classes: int) -> str:
    return f"kinetics710_official:kinetics{classes}_alphabetical"


def k400_b16_f8x224_from_k710() -> TrainConfig:
    """k400/k400+k710_b16_f8x224: B/16 8x224 from the K710 checkpoint, head re-initialised, lr 2e-6,
    5 (1) epochs, batch 256."""
    return _kinetics(400, "uniformerv2-b16-k710-8x224", "reinit")


def k600_b16_f8x224_from_k710() -> TrainConfig:
    """k600/k600+k710_b16_f8x224: as K400 but the K710 head is mapped to the 600 classes (alphabetical order)."""
    return _kinetics(600, "uniformerv2-b16-k710-8x224", "map", _k710_map(600))


def k700_b16_f8x224_from_k710() -> TrainConfig:
    """k700/k700+k710_b16_f8x224: as K400 but the K710 head is mapped to the 700 classes (alphabetical order)."""
    return _kinetics(700, "uniformerv2-b16-k710-8x224", "map", _k710_map(700))


def k400_b16_f8x224_from_clip() -> TrainConfig:
    """k400/k400_b16_f8x224: B/16 8x224 from CLIP, lr 1e-5, 55 (5) epochs, batch 256."""
    cfg = _kinetics(400, "clip-vit-b16", "reinit")
    cfg.optim = OptimConfig(base_lr=1e-5, warmup_epochs=5, epochs=55, global_batch_size=256)
    return cfg


def k400_l14_f8x224_from_k710() -> TrainConfig:
    """k400/k400+k710_l14_f8x224: L/14 8x224 from K710, lr 1.5e-6, 5 (1) epochs, batch 256."""
    cfg = _kinetics(400, "uniformerv2-l14-k710-8x224", "reinit")
    cfg.model.name = "uniformerv2_l14"
    cfg.optim.base_lr = 1.5e-6
    return cfg


def k400_l14_frozen_f8x336() -> TrainConfig:
    """k400/frozen_k400+k710_l14_f8x336: frozen L/14@336 from frozen K710, lr 5e-5, 5 (1) epochs, batch 512, 3x1 views.

    The official run keeps the K710 head and slices rows [:400] (DELETE_SPECIAL_HEAD False);
    here the rows are gathered into alphabetical K400 order, the same classifier re-ordered.
    """
    cfg = _kinetics(400, "uniformerv2-l14-k710-8x336-frozen", "map", _k710_map(400))
    cfg.model.name = "uniformerv2_l14_336_frozen"
    cfg.model.freeze_backbone = True
    cfg.data.crop_size = 336
    cfg.optim = OptimConfig(base_lr=5e-5, warmup_epochs=1, epochs=5, global_batch_size=512)
    cfg.eval = EvalConfig(test_clips=3, test_crops=1)
    return cfg


def k400_l14_frozen_f8x336_from_clip() -> TrainConfig:
    """k400/frozen_k400_l14_f8x336: frozen L/14@336 from CLIP, lr 8e-4, 50 epochs without warmup, batch 512."""
    cfg = k400_l14_frozen_f8x336()
    cfg.model.init, cfg.model.head, cfg.model.label_map = "clip-vit-l14-336", "reinit", ""
    cfg.optim = OptimConfig(base_lr=8e-4, warmup_epochs=0, epochs=50, global_batch_size=512)
    return cfg


def _ssv2(arch: str, init: str, lr: float) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(name=arch, init=init, num_classes=174, backbone_drop_path_rate=0.2, drop_path_rate=0.4),
        data=DataConfig(format="frames", separator=" ", num_frames=16, crop_size=224, channel_order="BGR"),
        aug=AugConfig(flip=False, num_samples=2),
        optim=OptimConfig(base_lr=lr, warmup_epochs=5, epochs=22, global_batch_size=128),
        eval=EvalConfig(test_clips=1, test_crops=3),
    )


def ssv2_b16_f16x224() -> TrainConfig:
    """sthv2/ssv2_b16_f16x224: B/16 SSv2 layout from CLIP, BGR frames, 2 augmented copies, lr 4e-5,
    22 (5) epochs, 128 videos."""
    return _ssv2("uniformerv2_b16_ssv2", "clip-vit-b16", 4e-5)


def ssv2_l14_f16x224() -> TrainConfig:
    """sthv2/ssv2_l14_f16x224: L/14 SSv2 layout from CLIP, lr 2e-5, 22 (5) epochs, 128 videos, grad checkpointing."""
    cfg = _ssv2("uniformerv2_l14_ssv2", "clip-vit-l14", 2e-5)
    cfg.model.grad_checkpointing = True
    return cfg


def debug_tiny() -> TrainConfig:
    """A CPU-sized random network (32 px, 4 frames, 2 blocks of width 64) for smoke tests of a data set."""
    return TrainConfig(
        model=ModelConfig(
            name="uniformerv2_b16",
            num_classes=2,
            arch=dict(
                input_resolution=32, patch_size=16, width=64, layers=2, heads=1, n_dim=64, n_head=1, return_list=[0, 1]
            ),
        ),
        data=DataConfig(num_frames=4, crop_size=32, num_workers=0),
        optim=OptimConfig(base_lr=1e-3, warmup_epochs=0, epochs=3, end_lr=1e-5, batch_size=4, amp="none"),
        eval=EvalConfig(test_clips=2, test_crops=1),
    )


#: Named recipes: name -> function returning a fresh :class:`TrainConfig`.
PRESETS: dict[str, Callable[[], TrainConfig]] = {
    fn.__name__: fn
    for fn in (
        k400_b16_f8x224_from_k710,
        k600_b16_f8x224_from_k710,
        k700_b16_f8x224_from_k710,
        k400_b16_f8x224_from_clip,
        k400_l14_f8x224_from_k710,
        k400_l14_frozen_f8x336,
        k400_l14_frozen_f8x336_from_clip,
        ssv2_b16_f16x224,
        ssv2_l14_f16x224,
        debug_tiny,
    )
}


def list_presets() -> list[str]:
    """Names accepted by :func:`get_preset`."""
    return list(PRESETS)


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of a named recipe.

    Raises:
        KeyError: unknown name (the message lists the presets).
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]()
