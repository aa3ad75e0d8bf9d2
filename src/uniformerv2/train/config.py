"""Everything a fine-tuning run needs, in one typed config (official behaviour §4.5).

A :class:`TrainConfig` has five sections (``model``, ``data``, ``aug``, ``optim``, ``eval``) plus
run settings. It is built from a named preset (:mod:`uniformerv2.train.presets`), a YAML or JSON file
(:func:`load_config`), and dotted ``section.field=value`` overrides (:func:`apply_overrides`).
Values in overrides are parsed as YAML when PyYAML is installed, otherwise as JSON, otherwise kept
as strings; each value is converted to the type of the field it replaces (``optim.base_lr=2e-6``,
``aug.flip=false``, ``data.mean=[0.5,0.5,0.5]``).

Batch sizes: the official ``TRAIN.BATCH_SIZE`` is **per machine** (per shard; the global batch is
``TRAIN.BATCH_SIZE x NUM_SHARDS``, §4.1). Here ``optim.global_batch_size`` is the number of
*videos* per optimizer step over all processes (repeated-augmentation copies not counted), and the
per-process batch is computed from it and the world size (:func:`per_process_batch`). With
``global_batch_size = 0`` the per-process ``optim.batch_size`` is used as given.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from uniformerv2.preprocess import OFFICIAL_MEAN, OFFICIAL_STD, PreprocessConfig

__all__ = [
    "ModelConfig",
    "DataConfig",
    "AugConfig",
    "OptimConfig",
    "EvalConfig",
    "TrainConfig",
    "load_config",
    "apply_overrides",
    "per_process_batch",
    "OFFICIAL_AUTO_AUGMENT",
]

#: RandAugment policy of every official run (§3.4).
OFFICIAL_AUTO_AUGMENT = "rand-m7-n4-mstd0.5-inc1"

HeadPolicy = Literal["reinit", "map", "keep"]
AmpDtype = Literal["fp16", "bf16", "none"]
DataFormat = Literal["video", "frames"]


def _check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass
class ModelConfig:
    """Which network to build and which weights start it (official §2.3)."""

    name: str = "uniformerv2_b16"  # architecture: a variant (uniformerv2_b16) or a zoo name (its architecture)
    init: str = ""  # starting weights: "" (random), a zoo name (clip-vit-b16, uniformerv2-b16-k710-8x224) or a file/dir
    head: HeadPolicy = "reinit"  # classifier from `init`: reinit (DELETE_SPECIAL_HEAD), map (gather K710 rows), keep
    # head="map": "<source>:<target>" label sets (kinetics710_official:kinetics600_alphabetical) or a JSON list file
    label_map: str = ""
    num_classes: int = 400  # classifier outputs
    labels_file: str = ""  # class names, one per line (or name<TAB>index / index,name); LABEL_<i> when empty
    arch: dict[str, Any] = field(
        default_factory=dict
    )  # extra UniFormerV2Config fields, e.g. {"return_list": [8, 9, 10, 11]}
    backbone_drop_path_rate: float = (
        0.0  # drop-path rate of the last backbone block (official DROP_PATH_RATE; 0.2 SSv2)
    )
    drop_path_rate: float = 0.0  # drop-path rate of the last global block (official DPR; 0.4 SSv2)
    grad_checkpointing: bool = False  # recompute backbone blocks in backward (official USE_CHECKPOINT)
    freeze_backbone: bool = False  # official FROZEN training: only global blocks, fusion and head learn
    # local-MHRA BatchNorm statistics over the global batch under DDP; off = per-process batch, as official
    sync_bn: bool = False

    def __post_init__(self) -> None:
        _check_choice("model.head", self.head, ("reinit", "map", "keep"))
        if self.head == "map" and not self.label_map:
            raise ValueError(
                "model.head='map' needs model.label_map (e.g. kinetics710_official:kinetics600_alphabetical)"
            )
        if self.num_classes < 1:
            raise ValueError(f"model.num_classes must be >= 1, got {self.num_classes}")


@dataclass
class DataConfig:
    """Annotation lists, decoding and the deterministic part of preprocessing (official §3)."""

    train_list: str = ""  # training annotation file
    val_list: str = ""  # validation annotation file (one centre view per video every eval_period epochs)
    test_list: str = ""  # multi-view test annotation file after training; the val list when empty
    root: str = ""  # prefix joined to every relative path of the lists (official PATH_PREFIX)
    format: DataFormat = "video"  # "video": `path<SEP>label` (kinetics_sparse); "frames": `dir num_frames label` (sth)
    separator: str = ","  # field separator of "video" lists (official PATH_LABEL_SEPARATOR); " " = any whitespace
    frame_template: str = "img_{:05d}.jpg"  # "frames": frame file names, numbered from 1 (SSv1 uses "{:05d}.jpg")
    num_frames: int = 8  # frames per clip T
    sampling: Literal["segment", "dense"] = "segment"  # segment (official, one frame per segment, §3.3) or dense
    frame_interval: int = 1  # dense sampling: stride between the clip's frames
    crop_size: int = 224  # train and test crop S
    mean: tuple[float, float, float] = OFFICIAL_MEAN  # normalisation mean on [0, 1] (SlowFast default, not CLIP's)
    std: tuple[float, float, float] = OFFICIAL_STD  # normalisation std on [0, 1]
    channel_order: Literal["RGB", "BGR"] = "RGB"  # BGR for SSv1/SSv2 (official frames were read by OpenCV)
    num_workers: int = 8  # data-loader processes per training process (official 8)
    skip_bad_videos: bool = False  # drop undecodable videos from the batch and count them, instead of raising
    check_files: bool = True  # at start-up, check that every listed file exists (errors name the line)

    def __post_init__(self) -> None:
        _check_choice("data.format", self.format, ("video", "frames"))
        _check_choice("data.channel_order", self.channel_order, ("RGB", "BGR"))
        _check_choice("data.sampling", self.sampling, ("segment", "dense"))
        if self.frame_interval < 1:
            raise ValueError(f"data.frame_interval must be >= 1, got {self.frame_interval}")
        if not self.separator:
            raise ValueError("data.separator must not be empty")

    def preprocess(self, num_clips: int = 1, num_crops: int = 1) -> PreprocessConfig:
        """The :class:`PreprocessConfig` these settings describe, with the given test views."""
        return PreprocessConfig(
            num_frames=self.num_frames,
            crop_size=self.crop_size,
            mean=self.mean,
            std=self.std,
            channel_order=self.channel_order,
            sampling=self.sampling,
            frame_interval=self.frame_interval,
            num_clips=num_clips,
            num_crops=num_crops,
            one_based=self.format == "frames",
        )


@dataclass
class AugConfig:
    """Training augmentation (official §3.4)."""

    auto_augment: str = OFFICIAL_AUTO_AUGMENT  # clip-consistent RandAugment policy; "" turns it off
    flip: bool = True  # horizontal flip p=0.5 (official RANDOM_FLIP: on, off for SSv1/SSv2)
    num_samples: int = (
        1  # repeated augmentation: augmented copies per decoded clip (official AUG.NUM_SAMPLE; 2 for SSv2)
    )
    scale: tuple[float, float] = (0.08, 1.0)  # random-resized-crop area range
    ratio: tuple[float, float] = (0.75, 1.3333)  # random-resized-crop aspect range

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"aug.num_samples must be >= 1, got {self.num_samples}")


@dataclass
class OptimConfig:
    """AdamW, learning-rate schedule, precision and batch (official §4.2-4.4)."""

    base_lr: float = 1e-5  # peak lr (official BASE_LR; absolute, not scaled with the batch)
    warmup_epochs: float = 5.0  # linear warmup length W in epochs (0 = none)
    epochs: int = 55  # total epochs E; the half-cosine reaches end_lr at E
    warmup_start_lr: float = 1e-6  # lr at epoch 0 (official WARMUP_START_LR)
    end_lr: float = 1e-6  # lr at epoch E (official COSINE_END_LR)
    weight_decay: float = 0.05  # AdamW decay of >= 2-D params (1-D and BatchNorm params get 0)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    eps: float = 1e-8  # AdamW eps
    clip_grad: float = 20.0  # global L2 gradient-norm clip after unscaling (0 = off)
    amp: AmpDtype = (
        "fp16"  # autocast dtype on CUDA: fp16 (+GradScaler, official), bf16, or none; CPU runs fp32 unless bf16
    )
    accum_steps: int = 1  # micro-batches accumulated per optimizer step
    batch_size: int = 8  # videos per process per micro-batch (used when global_batch_size is 0)
    global_batch_size: int = 0  # videos per optimizer step over all processes; sets the per-process batch

    def __post_init__(self) -> None:
        _check_choice("optim.amp", self.amp, ("fp16", "bf16", "none"))
        if self.end_lr > self.base_lr:
            raise ValueError(f"optim.end_lr ({self.end_lr}) must be <= optim.base_lr ({self.base_lr}), as official")
        if self.epochs < 1 or self.accum_steps < 1 or self.batch_size < 1:
            raise ValueError("optim.epochs, optim.accum_steps and optim.batch_size must be >= 1")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"optim.warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")


@dataclass
class EvalConfig:
    """Validation during training and the final multi-view test (official §4.6, §3.4)."""

    period: int = 1  # validate every `period` epochs and after the last one (official EVAL_PERIOD)
    batch_size: int = 0  # videos per process for validation; the training batch when 0
    final_test: bool = True  # after training, test the best model with test_clips x test_crops views
    test_clips: int = 4  # temporal views of the final test (4 Kinetics, 3 frozen, 1 SSv2)
    test_crops: int = 3  # spatial views of the final test (1 or 3)

    def __post_init__(self) -> None:
        if self.period < 1 or self.test_clips < 1:
            raise ValueError("eval.period and eval.test_clips must be >= 1")
        if self.test_crops not in (1, 3):
            raise ValueError(f"eval.test_crops must be 1 or 3, got {self.test_crops}")


@dataclass
class TrainConfig:
    """A complete fine-tuning run. Sections hold the settings; see each section's fields."""

    model: ModelConfig = field(default_factory=ModelConfig)  # network and starting weights
    data: DataConfig = field(default_factory=DataConfig)  # annotation lists and preprocessing
    aug: AugConfig = field(default_factory=AugConfig)  # training augmentation
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimizer, schedule, precision, batch
    eval: EvalConfig = field(default_factory=EvalConfig)  # validation and final test
    output_dir: str = "runs/uniformerv2"  # last.pt, best.pt, metrics.jsonl, curves.png, best_model/
    seed: int = 6666  # seeds model init, shuffling and every augmentation draw (official RNG_SEED)
    resume: str = "auto"  # "auto": continue from output_dir/last.pt if present; "": start fresh; or a checkpoint path
    checkpoint_every_minutes: float = 15.0  # also save last.pt within an epoch after this much training (0 = off)
    checkpoint_every_steps: int = 0  # save last.pt every N optimizer steps instead (0 = use the minutes)
    device: str = "auto"  # "auto" (cuda:LOCAL_RANK when available, else cpu), "cpu" or "cuda"
    progress: bool = True  # tqdm bar on rank 0 with the running loss and the lr
    tensorboard: bool = False  # also log step loss/lr and epoch metrics to output_dir/tensorboard (extra [train])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a nested dict (``{"optim": {"base_lr": 2e-6}}``, dotted keys also accepted).

        Raises:
            KeyError: an unknown section or field (the message lists the known ones).
        """
        return _update(cls(), data)


def _update(cfg: TrainConfig, data: dict[str, Any]) -> TrainConfig:
    """Set every (possibly nested or dotted) key of ``data`` on ``cfg`` and re-validate."""
    for key, value in data.items():
        _set_path(cfg, key.split("."), value)
    return _revalidate(cfg)


def _coerce(current: Any, value: Any, where: str) -> Any:
    """Convert ``value`` to the type of the field's current value."""
    if isinstance(current, bool):
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    try:
        if isinstance(current, float):
            return float(value)
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, str):
            return "" if value is None else str(value)
        if isinstance(current, tuple):
            items = json.loads(value) if isinstance(value, str) else value
            return tuple(_coerce(c, v, where) for c, v in zip(current, items, strict=True))
        if isinstance(current, dict):
            return dict(json.loads(value) if isinstance(value, str) else value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: cannot use {value!r} for a {type(current).__name__} field") from exc
    return value


def _set_path(cfg: Any, parts: list[str], value: Any) -> None:
    obj = cfg
    for i, part in enumerate(parts[:-1]):
        obj = getattr(obj, part, None)
        if not dataclasses.is_dataclass(obj):
            raise KeyError(
                f"unknown config section {'.'.join(parts[: i + 1])!r}; sections: model, data, aug, optim, eval"
            )
    name = parts[-1]
    fields = {f.name for f in dataclasses.fields(obj)}
    if name not in fields:
        raise KeyError(f"unknown config key {'.'.join(parts)!r}; known here: {', '.join(sorted(fields))}")
    current = getattr(obj, name)
    if dataclasses.is_dataclass(current):
        if not isinstance(value, dict):
            raise ValueError(f"{'.'.join(parts)} is a section; give section.field=value")
        for sub, sub_value in value.items():
            _set_path(current, [sub], sub_value)
        return
    setattr(obj, name, _coerce(current, value, ".".join(parts)))


def _revalidate(cfg: TrainConfig) -> TrainConfig:
    """Run every section's ``__post_init__`` checks again after edits."""
    for section in (cfg.model, cfg.data, cfg.aug, cfg.optim, cfg.eval):
        section.__post_init__()
    if cfg.checkpoint_every_minutes < 0 or cfg.checkpoint_every_steps < 0:
        raise ValueError("checkpoint_every_minutes and checkpoint_every_steps must be >= 0 (0 = off)")
    return cfg


def _parse_value(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return yaml.safe_load(text) if text.strip() else ""


def apply_overrides(cfg: TrainConfig, overrides: Iterable[str]) -> TrainConfig:
    """Apply ``section.field=value`` strings to a copy of ``cfg``.

    Raises:
        KeyError: an unknown section or field (the message lists the known ones).
        ValueError: a malformed override or a value of the wrong type.
    """
    out = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form section.field=value")
        _set_path(out, key.strip().split("."), _parse_value(text))
    return _revalidate(out)


def load_config(path: str | os.PathLike[str], base: TrainConfig | None = None) -> TrainConfig:
    """Read a YAML (``.yaml``/``.yml``, needs PyYAML) or JSON file over ``base`` (defaults when None).

    A file may name a preset as its first key, ``preset: k400_b16_f8x224_from_k710``; the rest
    of the file then overrides that preset.
    """
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (a config is YAML or JSON)") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the config ({exc.strerror or type(exc).__name__})") from None
    try:
        data = yaml.safe_load(text) if Path(path).suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not valid YAML/JSON ({first})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping of sections")
    preset = data.pop("preset", None)
    if preset:
        from uniformerv2.train.presets import get_preset

        cfg = get_preset(preset)
    else:
        cfg = copy.deepcopy(base) if base is not None else TrainConfig()
    return _update(cfg, data)


def per_process_batch(optim: OptimConfig, world_size: int) -> int:
    """Videos per process per micro-batch.

    ``global_batch_size / (world_size x accum_steps)`` when a global batch is set (it must divide
    exactly), otherwise ``optim.batch_size``.
    """
    if optim.global_batch_size <= 0:
        return optim.batch_size
    per, rest = divmod(optim.global_batch_size, world_size * optim.accum_steps)
    if rest or per < 1:
        raise ValueError(
            f"optim.global_batch_size={optim.global_batch_size} is not divisible by world size {world_size} x "
            f"accum_steps {optim.accum_steps}; change one of them"
        )
    return per


def __getattr__(name: str) -> Any:
    """``PRESETS``, ``get_preset`` and ``list_presets`` live in :mod:`uniformerv2.train.presets`."""
    if name in ("PRESETS", "get_preset", "list_presets"):
        from uniformerv2.train import presets

        return getattr(presets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
