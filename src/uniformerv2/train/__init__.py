"""Fine-tuning UniFormerV2 on video lists, from one CPU process to many GPU nodes (official §4).

The entry point is :func:`fit` with a :class:`TrainConfig` (built from a preset, a YAML/JSON
file and dotted overrides); ``uniformerv2 train`` is a thin command line over it. The pieces are
usable on their own: :mod:`.data` (lists, datasets, collate), :mod:`.optim` (param groups, lr),
:mod:`.engine` (``train_one_epoch``, ``evaluate``, ``test_multiview``), :mod:`.presets`
(the official recipes), :mod:`.checkpoint`
(training state), :mod:`.distributed` (torchrun) and :mod:`.curves` (metrics and plot);
:mod:`.trainer` holds :func:`fit`.
"""

from uniformerv2.train.builder import build_model, init_from_checkpoint
from uniformerv2.train.config import (
    AugConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    load_config,
    per_process_batch,
)
from uniformerv2.train.engine import evaluate, test_multiview, train_one_epoch
from uniformerv2.train.optim import build_optimizer, lr_at, param_groups
from uniformerv2.train.presets import PRESETS, get_preset, list_presets
from uniformerv2.train.trainer import FitResult, TrainingInterrupted, fit

__all__ = [
    "PRESETS",
    "AugConfig",
    "DataConfig",
    "EvalConfig",
    "FitResult",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainingInterrupted",
    "apply_overrides",
    "build_model",
    "build_optimizer",
    "evaluate",
    "fit",
    "get_preset",
    "init_from_checkpoint",
    "list_presets",
    "load_config",
    "lr_at",
    "param_groups",
    "per_process_batch",
    "test_multiview",
    "train_one_epoch",
]
