"""The network a run fine-tunes: architecture, starting weights, classifier policy, freezing
(official behaviour §2.3).

Head policies for a checkpoint that has a classifier (CLIP has none and only fills the backbone):

- ``"reinit"``: the classifier starts from a fresh initialisation (official
  ``DELETE_SPECIAL_HEAD=True``; the official code only deletes it when the class count differs,
  which is the case in every experiment that uses it).
- ``"map"``: row k of the new classifier is row ``label_map[k]`` of the checkpoint's (official
  ``DELETE_SPECIAL_HEAD=False`` with ``label_mixto{600,700}.json``; the ``[:400]`` slice of the
  frozen K400 runs is the same classifier in the official K400 order).
- ``"keep"``: the classifier is loaded as it is; its class count must equal ``num_classes``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from uniformerv2.api import create_model
from uniformerv2.model.uniformerv2 import UniFormerV2
from uniformerv2.train.config import TrainConfig
from uniformerv2.weights.io import LoadReport, keep_head, load_weights, map_head, reinit_head
from uniformerv2.zoo import (
    fetch_weights,
    list_pretrained,
    load_label_map,
    load_labels,
    read_label_file,
)

__all__ = ["build_model", "init_from_checkpoint", "resolve_label_map", "resolve_labels"]


def resolve_label_map(spec: str) -> list[int]:
    """Row indices for ``head="map"``.

    Args:
        spec: a JSON file holding a list of row indices (official ``label_mixto*.json``), or
            ``"<source>:<target>"`` label-set names for a shipped K710 map, e.g.
            ``"kinetics710_official:kinetics600_alphabetical"``.
    """
    if os.path.isfile(spec):
        order = json.loads(Path(spec).read_text(encoding="utf-8"))
        if not isinstance(order, list) or not all(isinstance(i, int) for i in order):
            raise ValueError(f"{spec}: a label map must be a JSON list of integers")
        return order
    source, sep, target = spec.partition(":")
    if not sep:
        raise ValueError(f"label map {spec!r} is neither a JSON file nor 'source:target' label-set names")
    return load_label_map(source, target)


def resolve_labels(cfg: TrainConfig) -> list[str]:
    """Class names in head order: ``labels_file``, else the target set of a shipped label map,
    else ``LABEL_<i>``."""
    model = cfg.model
    if model.labels_file:
        return read_label_file(model.labels_file, expected=model.num_classes)
    if model.head == "map" and ":" in model.label_map and not os.path.isfile(model.label_map):
        names = load_labels(model.label_map.partition(":")[2])
        if len(names) == model.num_classes:
            return names
    return [f"LABEL_{i}" for i in range(model.num_classes)]


def _init_path(init: str) -> Path:
    if init in list_pretrained():
        return fetch_weights(init)
    path = Path(init)
    if not path.exists():
        raise FileNotFoundError(f"model.init {init!r} is neither a zoo name (uniformerv2 zoo) nor an existing path")
    return path


def init_from_checkpoint(model: UniFormerV2, init: str, head: str = "reinit", label_map: str = "") -> LoadReport:
    """Load starting weights into ``model`` with a head policy (see the module docstring).

    Args:
        model: the freshly built network.
        init: zoo name, checkpoint file or model directory (official, MMAction2, CLIP or ours;
            a training state ``best.pt``/``last.pt`` works too).
        head: ``"reinit"``, ``"map"`` or ``"keep"``.
        label_map: for ``"map"``: see :func:`resolve_label_map`.

    Raises:
        CheckpointError: the weights do not fit the architecture, or ``"keep"`` with another
            class count.
    """
    path = _init_path(init)
    policies = {"reinit": reinit_head, "keep": keep_head}
    policy = map_head(resolve_label_map(label_map), label_map) if head == "map" else policies[head]
    return load_weights(model, path, filters=(policy,))


def build_model(cfg: TrainConfig) -> UniFormerV2:
    """Build the network of ``cfg.model`` in train mode, load ``init``, freeze if asked.

    ``pretrained_cfg`` carries the class names (:func:`resolve_labels`) and the preprocessing of
    the run with the final test views, so the exported model predicts as it was tested.
    """
    mcfg = cfg.model
    arch = {
        **mcfg.arch,
        "backbone_drop_path_rate": mcfg.backbone_drop_path_rate,
        "drop_path_rate": mcfg.drop_path_rate,
        "grad_checkpointing": mcfg.grad_checkpointing,
    }
    if "return_list" in arch:
        arch["return_list"] = tuple(arch["return_list"])
    model = create_model(mcfg.name, num_classes=mcfg.num_classes, **arch)
    if mcfg.init:
        init_from_checkpoint(model, mcfg.init, mcfg.head, mcfg.label_map)
    if mcfg.freeze_backbone:
        model.freeze_backbone()
    model.pretrained_cfg = {
        "labels": resolve_labels(cfg),
        "preprocess": cfg.data.preprocess(cfg.eval.test_clips, cfg.eval.test_crops),
        "source": mcfg.init or mcfg.name,
    }
    return model.train()
