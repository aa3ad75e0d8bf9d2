"""What a checkpoint file says about itself: the architecture, preprocessing and labels stored in it.

Looked for, in this order:

- ``config``: our training state (``best.pt`` / ``last.pt``), a :class:`~uniformerv2.train.config.TrainConfig`
  JSON string (architecture, test-time preprocessing and views, labels file);
- ``cfg``: an official training checkpoint, the YAML dump of its SlowFast config (``UNIFORMERV2.*``,
  ``DATA.*``, ``TEST.*``), or a JSON string of official ``VisionTransformer`` kwargs;
- ``meta.cfg``: an MMAction2 (mmengine) checkpoint, the Python-syntax config text. It is parsed
  (literals, ``dict(...)``, earlier names), never executed.

Without a stored config the architecture is read off tensor shapes
(:func:`~uniformerv2.weights.convert.infer_config`); what shapes cannot tell (backbone heads,
which blocks feed the global blocks) is assumed and said in a warning, unless the shapes are those
of a released architecture. Labels and preprocessing are then guessed from the format and class count.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from uniformerv2.config import UniFormerV2Config
from uniformerv2.errors import CheckpointError
from uniformerv2.model.variants import list_variants, variant_config
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.weights.convert import StateDict, infer_config
from uniformerv2.zoo import get_pretrained_cfg, load_labels

_logger = logging.getLogger(__name__)

#: Label order of a checkpoint without stored labels, keyed by (format, classes). MMAction2 Kinetics
#: heads are alphabetical; official K400 heads are not. 710-class MMAction2 heads depend on the date.
_GUESSED_LABELS = {
    ("official", 400): "kinetics400",
    ("official", 710): "kinetics710_official",
    ("official", 174): "sthv2",
    ("official", 339): "mit",
    ("official", 200): "activitynet",
    ("mmaction2", 400): "kinetics400_alphabetical",
    ("mmaction2", 600): "kinetics600_alphabetical",
    ("mmaction2", 700): "kinetics700_alphabetical",
    ("mmaction2", 339): "mit",
}

#: MMAction2 re-exported its K710 files with a re-ordered head on 2023-06-12 (#2534); earlier files
#: use the official K710 order.
_MM_K710_REORDER_DATE = "20230601"

#: Official backbone factory name -> our variant with the same backbone.
_OFFICIAL_BACKBONES = {
    "uniformerv2_b16": "uniformerv2_b16",
    "uniformerv2_l14": "uniformerv2_l14",
    "uniformerv2_l14_336": "uniformerv2_l14_336",
}

#: Fields read off tensor shapes; a stored config that disagrees is an error, not an override.
_SHAPE_FIELDS = ("input_resolution", "patch_size", "width", "layers", "local_mhra", "temporal_downsample", "n_dim")


@dataclass
class StoredConfig:
    """Architecture, preprocessing and labels found in a checkpoint (each part may be missing).

    Attributes:
        origin: where it came from, for messages (``"training config"``, ``"official cfg"``, ``"meta.cfg"``).
        official: official ``VisionTransformer`` kwargs (partial), for
            :meth:`UniFormerV2Config.from_official_kwargs`.
        ours: :class:`UniFormerV2Config` fields (a complete architecture).
        preprocess: test-time pipeline, if stored.
        labels: class names in head order, if stored.
        dataset: the data set name, if stored (tells SSv1 from SSv2).
    """

    origin: str
    official: dict[str, Any] = field(default_factory=dict)
    ours: dict[str, Any] = field(default_factory=dict)
    preprocess: PreprocessConfig | None = None
    labels: list[str] | None = None
    dataset: str = ""


@dataclass
class CheckpointDescription:
    """Everything needed to build and feed the model of a checkpoint file."""

    config: UniFormerV2Config
    preprocess: PreprocessConfig
    labels: list[str] | None
    origin: str = "tensor shapes"


def describe_checkpoint(
    sd: StateDict, fmt: str, extras: Mapping[str, Any], source: str, overrides: Mapping[str, Any] | None = None
) -> CheckpointDescription:
    """Architecture, preprocessing and labels of a checkpoint in our layout (see the module docstring).

    Args:
        sd: the state dict, converted to our layout.
        fmt: the file's layout (``"official"``, ``"mmaction2"``, ``"ours"``).
        extras: the file's other top-level entries (``cfg``, ``config``, ``meta``).
        source: the file, for messages.
        overrides: architecture fields given by the caller; they win over everything.

    Raises:
        CheckpointError: the stored config contradicts the tensors.
    """
    overrides = dict(overrides or {})
    stored = read_stored_config(extras, source)
    config = _architecture(sd, stored, overrides, source)
    preprocess = stored.preprocess if stored and stored.preprocess else None
    labels = stored.labels if stored else None
    if labels is not None and len(labels) != config.num_classes:
        _logger.warning("%s: %d stored labels for %d classes; ignored", source, len(labels), config.num_classes)
        labels = None
    if labels is None or preprocess is None:
        label_set, guessed = guess_labels(fmt, config.num_classes, source, extras, stored.dataset if stored else "")
        labels = labels if labels is not None else (load_labels(label_set) if label_set else None)
        preprocess = preprocess or guessed
    return CheckpointDescription(config, preprocess, labels, stored.origin if stored else "tensor shapes")


# ------------------------------------------------------------------------------------------------
# architecture


def _official_kwargs(config: UniFormerV2Config) -> dict[str, Any]:
    """Official ``VisionTransformer`` kwargs of a config (the inverse of ``from_official_kwargs``)."""
    data = config.to_dict()
    local = data.pop("local_mhra")
    data.update(
        no_lmhra=local == "none",
        double_lmhra=local == "double",
        kernel_size=data.pop("stem_kernel_t"),
        n_layers=len(data["return_list"]),
        use_checkpoint=data.pop("grad_checkpointing"),
    )
    return data


def _architecture(
    sd: StateDict, stored: StoredConfig | None, overrides: dict[str, Any], source: str
) -> UniFormerV2Config:
    inferred = infer_config(sd)
    known: set[str] = set()
    try:
        if stored is not None and stored.ours:
            config = UniFormerV2Config(**{**inferred.to_dict(), **stored.ours})
            known = set(stored.ours)
        elif stored is not None and stored.official:
            merged = {**_official_kwargs(inferred), **stored.official}
            merged.pop("mlp_dropout", None)  # training only; its length follows n_layers
            config = UniFormerV2Config.from_official_kwargs(merged)
            known = set(stored.official)
        else:
            config = inferred
        if overrides:
            config = UniFormerV2Config(**{**config.to_dict(), **overrides, "mlp_dropout": config.mlp_dropout[:1]})
        _check_against_tensors(config, inferred, source, f"stored {stored.origin}" if stored else "given architecture")
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: architecture does not fit the weights ({exc})") from None
    assumed = [k for k in ("heads", "n_head", "return_list") if k not in known and k not in overrides]
    if assumed and not _is_released_layout(config):
        _logger.warning(
            "%s: no stored %s; assuming heads=%d, n_head=%d (head width 64) and global blocks after blocks %s "
            "(the layout of every released file) - pass heads=/n_head=/return_list= if it was trained otherwise",
            source,
            "/".join(assumed),
            config.heads,
            config.n_head,
            list(config.return_list),
        )
    return config


def _check_against_tensors(config: UniFormerV2Config, inferred: UniFormerV2Config, source: str, origin: str) -> None:
    conflicts = [
        f"{name}={getattr(config, name)!r} but the tensors say {getattr(inferred, name)!r}"
        for name in (*_SHAPE_FIELDS, "frozen", "fusion")
        if getattr(config, name) != getattr(inferred, name)
    ]
    if config.n_layers != inferred.n_layers:
        conflicts.append(f"{config.n_layers} global blocks but the tensors hold {inferred.n_layers}")
    if inferred.num_classes and config.num_classes != inferred.num_classes:
        conflicts.append(f"num_classes={config.num_classes} but the classifier has {inferred.num_classes} rows")
    if config.temporal_downsample and config.stem_kernel_t != inferred.stem_kernel_t:
        conflicts.append(f"stem_kernel_t={config.stem_kernel_t} but the stem kernel has {inferred.stem_kernel_t}")
    if conflicts:
        raise CheckpointError(f"{source}: the {origin} does not match the weights: {'; '.join(conflicts)}")


def _is_released_layout(config: UniFormerV2Config) -> bool:
    """True when the architecture is one of the registered variants (class count aside)."""
    ignore = ("num_classes", "backbone_drop_path_rate", "drop_path_rate", "mlp_dropout", "cls_dropout")
    mine = {k: v for k, v in config.to_dict().items() if k not in ignore}
    for name in list_variants():
        other = {k: v for k, v in variant_config(name).to_dict().items() if k not in ignore}
        if other == mine:
            return True
    return False


# ------------------------------------------------------------------------------------------------
# stored configs


def read_stored_config(extras: Mapping[str, Any], source: str) -> StoredConfig | None:
    """The config stored in a checkpoint's extra entries, or None (see the module docstring)."""
    if isinstance(extras.get("config"), str):
        return _from_training_config(extras["config"], source)
    if isinstance(extras.get("cfg"), str):
        return _from_official_cfg(extras["cfg"], source)
    meta = extras.get("meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("cfg"), str):
        stored = _from_mmaction2_cfg(meta["cfg"], source)
        classes = _section(meta, "dataset_meta").get("classes")
        if stored is not None and isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
            stored.labels = list(classes)
        return stored
    return None


def _from_training_config(text: str, source: str) -> StoredConfig | None:
    """Our :class:`TrainConfig` JSON: the run's architecture, final-test preprocessing and labels."""
    from uniformerv2.train.builder import resolve_labels
    from uniformerv2.train.config import TrainConfig

    try:
        cfg = TrainConfig.from_dict(json.loads(text))
        model = cfg.model
        arch = model.name if model.name in list_variants() else get_pretrained_cfg(model.name).arch
        extra = dict(model.arch)
        if "return_list" in extra:
            extra["return_list"] = tuple(extra["return_list"])
        config = variant_config(arch, num_classes=model.num_classes, **extra)
        preprocess = cfg.data.preprocess(cfg.eval.test_clips, cfg.eval.test_crops)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        _logger.warning("%s: the stored training config cannot be used (%s); reading the tensors instead", source, exc)
        return None
    labels: list[str] | None = None
    try:
        labels = resolve_labels(cfg)
    except (OSError, ValueError) as exc:
        _logger.warning("%s: the run's labels file cannot be read (%s); labels are LABEL_<i>", source, exc)
    if labels is not None and all(name == f"LABEL_{i}" for i, name in enumerate(labels)):
        labels = None
    ours = config.to_dict()
    for training_only in ("backbone_drop_path_rate", "drop_path_rate", "mlp_dropout", "cls_dropout"):
        ours.pop(training_only)
    return StoredConfig("training config", ours=ours, preprocess=preprocess, labels=labels)


def _from_official_cfg(text: str, source: str) -> StoredConfig | None:
    """The official trainer's YAML dump (``UNIFORMERV2.*`` etc.) or a JSON string of official kwargs."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            _logger.warning(
                "%s: the stored cfg is neither JSON nor YAML (%s); reading the tensors instead", source, exc
            )
            return None
        if not isinstance(data, dict) or not isinstance(data.get("UNIFORMERV2"), dict):
            return None
        return _from_slowfast_yaml(data)
    return StoredConfig("official cfg", official=dict(data)) if isinstance(data, dict) else None


def _from_slowfast_yaml(data: dict[str, Any]) -> StoredConfig:
    section = {k.lower(): v for k, v in data["UNIFORMERV2"].items()}
    official: dict[str, Any] = {}
    backbone = _OFFICIAL_BACKBONES.get(str(section.get("backbone", "")))
    if backbone:
        base = variant_config(backbone)
        official.update(
            input_resolution=base.input_resolution,
            patch_size=base.patch_size,
            width=base.width,
            layers=base.layers,
            heads=base.heads,
        )
    keys = ("n_layers", "n_dim", "n_head", "mlp_factor", "return_list", "dw_reduction", "temporal_downsample")
    official.update({k: section[k] for k in (*keys, "no_lmhra", "double_lmhra", "frozen") if k in section})
    model, data_cfg, test = (_section(data, k) for k in ("MODEL", "DATA", "TEST"))
    if "NUM_CLASSES" in model:
        official["num_classes"] = model["NUM_CLASSES"]
    dataset = str(test.get("DATASET") or _section(data, "TRAIN").get("DATASET") or "")
    preprocess = None
    try:
        preprocess = PreprocessConfig(
            num_frames=int(data_cfg.get("NUM_FRAMES", 8)),
            crop_size=int(data_cfg.get("TEST_CROP_SIZE", 224)),
            mean=tuple(data_cfg.get("MEAN", (0.45, 0.45, 0.45))),
            std=tuple(data_cfg.get("STD", (0.225, 0.225, 0.225))),
            channel_order="BGR" if dataset.startswith("sth") else "RGB",
            num_clips=int(test.get("NUM_ENSEMBLE_VIEWS", 4)),
            num_crops=int(test.get("NUM_SPATIAL_CROPS", 3)),
        )
    except (TypeError, ValueError):
        pass
    return StoredConfig("official cfg", official=official, preprocess=preprocess, dataset=dataset)


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


# MMAction2 -------------------------------------------------------------------------------------

_BACKBONE_DROP = ("type", "pretrained", "clip_pretrained", "init_cfg", "t_size")


def _from_mmaction2_cfg(text: str, source: str) -> StoredConfig | None:
    """An mmengine ``meta.cfg`` text: ``model.backbone``/``model.cls_head`` and the test pipeline."""
    env = parse_python_config(text)
    model = _section(env, "model")
    backbone = _section(model, "backbone")
    if not backbone:
        _logger.warning("%s: meta.cfg has no readable model.backbone; reading the tensors instead", source)
        return None
    official = {k: v for k, v in backbone.items() if k not in _BACKBONE_DROP and v is not _UNPARSED}
    head = _section(model, "cls_head")
    if isinstance(head.get("num_classes"), int):
        official["num_classes"] = head["num_classes"]
    return StoredConfig("meta.cfg", official=official, preprocess=_mmaction2_preprocess(env, backbone, model))


def _mmaction2_preprocess(
    env: dict[str, Any], backbone: dict[str, Any], model: dict[str, Any]
) -> PreprocessConfig | None:
    pipeline = env.get("test_pipeline")
    if not isinstance(pipeline, list):
        pipeline = _section(_section(env, "test_dataloader"), "dataset").get("pipeline")
    steps = {s.get("type"): s for s in pipeline if isinstance(s, dict)} if isinstance(pipeline, list) else {}
    sample = steps.get("UniformSample") or {}
    crop = steps.get("ThreeCrop") or steps.get("CenterCrop") or {}
    norm = _section(model, "data_preprocessor")
    frames = sample.get("clip_len", backbone.get("t_size"))
    if not isinstance(frames, int):
        return None
    try:
        return PreprocessConfig(
            num_frames=frames,
            crop_size=int(crop.get("crop_size", 224)),
            mean=tuple(v / 255 for v in norm.get("mean", (114.75,) * 3)),
            std=tuple(v / 255 for v in norm.get("std", (57.375,) * 3)),
            num_clips=int(sample.get("num_clips", 4)),
            num_crops=3 if "ThreeCrop" in steps or not steps else 1,
        )
    except (TypeError, ValueError):
        return None


class _Unparsed:
    """A config value this parser does not evaluate (a call, an attribute, a lambda...)."""

    def __repr__(self) -> str:
        return "<unparsed>"


_UNPARSED = _Unparsed()
_NAMED = {"True": True, "False": False, "None": None}


def parse_python_config(text: str) -> dict[str, Any]:
    """Top-level ``name = value`` assignments of a Python-syntax config, evaluated as data.

    Literals, lists, tuples, dicts, ``dict(key=...)`` calls, unary minus, arithmetic on numbers and
    names assigned earlier are evaluated; anything else becomes an unparsed marker. Nothing is run.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    env: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            env[node.targets[0].id] = _value(node.value, env)
    return env


def _value(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_value(e, env) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_value(k, env): _value(v, env) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _value(kw.value, env) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Name):
        return env.get(node.id, _NAMED.get(node.id, _UNPARSED))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, env)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        left, right = _value(node.left, env), _value(node.right, env)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            return left / right if right else _UNPARSED
    return _UNPARSED


# ------------------------------------------------------------------------------------------------
# labels and preprocessing of files that store none


def guess_labels(
    fmt: str, num_classes: int, source: str, extras: Mapping[str, Any], dataset: str = ""
) -> tuple[str | None, PreprocessConfig]:
    """Label set and preprocessing of a checkpoint that carries none, from its format and size.

    A 710-class MMAction2 head is in the official K710 order before MMAction2's 2023-06 re-export
    and in MMAction2's order after it; the date comes from the OpenMMLab file name
    (``..._20230612-63cdbad9.pth``) or ``meta.time``. Without a date the labels are left unknown
    (``LABEL_<i>``) with a warning rather than guessed.
    """
    label_set = _GUESSED_LABELS.get((fmt, num_classes))
    if fmt == "official" and num_classes == 174 and dataset.startswith("sthv1"):
        label_set = "sthv1"
    if fmt == "mmaction2" and num_classes == 710:
        label_set = _mmaction2_k710_order(source, extras)
    preprocess = PreprocessConfig()
    if label_set in ("sthv1", "sthv2"):
        preprocess = PreprocessConfig(num_frames=16, channel_order="BGR", num_clips=1, num_crops=3)
    if label_set is None and fmt != "ours" and not (fmt == "mmaction2" and num_classes == 710):
        _logger.warning(
            "%s: %d classes of unknown order; labels are LABEL_<i> "
            "(name them with --labels FILE, or the labels argument in Python)",
            source,
            num_classes,
        )
    elif label_set is not None:
        _logger.info("%s: assuming %s labels in that file's order", source, label_set)
    return label_set, preprocess


def _mmaction2_k710_order(source: str, extras: Mapping[str, Any]) -> str | None:
    name = Path(source).name
    match = re.search(r"_(20\d{6})-[0-9a-f]{8}\.pth$", name)
    meta = extras.get("meta")
    stamp = meta.get("time") if isinstance(meta, Mapping) else None
    if match is None and isinstance(stamp, str):
        match = re.match(r"(20\d{6})", stamp)
    if match is None:
        _logger.warning(
            "%s: a 710-class MMAction2 head, but no date in the file name or meta; MMAction2 re-ordered its "
            "K710 classes on 2023-06-12, so the labels are LABEL_<i> - name them with the label set "
            "kinetics710_mmaction2 for files from 2023-06 on, kinetics710_official for earlier ones "
            "(convert --labels-from on the command line, load_labels(...) in Python)",
            source,
        )
        return None
    return "kinetics710_official" if match[1] < _MM_K710_REORDER_DATE else "kinetics710_mmaction2"


__all__ = ["CheckpointDescription", "StoredConfig", "describe_checkpoint", "guess_labels", "read_stored_config"]
