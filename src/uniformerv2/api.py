"""Building and loading models by name, path or Hub id: the entry points users call first."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import torch

from uniformerv2.errors import CheckpointError
from uniformerv2.model.uniformerv2 import UniFormerV2
from uniformerv2.model.variants import list_variants, variant_config
from uniformerv2.weights.hub import from_pretrained as from_pretrained_dir
from uniformerv2.weights.io import load_checkpoint, load_weights
from uniformerv2.weights.stored import describe_checkpoint
from uniformerv2.zoo import fetch_weights, get_pretrained_cfg, list_pretrained


def list_models(filter: str | None = None) -> list[str]:  # noqa: A002 (timm-compatible name)
    """Architecture variants and zoo checkpoint names, optionally filtered by a substring."""
    names = list_variants() + list_pretrained()
    return [n for n in names if filter is None or filter in n]


def create_model(
    name: str, *, pretrained: bool = False, num_classes: int | None = None, **overrides: Any
) -> UniFormerV2:
    """Build a model from a variant name (``uniformerv2_b16``) or a zoo name.

    Args:
        name: variant or zoo checkpoint name.
        pretrained: load the zoo checkpoint's weights (zoo names only).
        num_classes: classifier size; for a pretrained model a different value re-initialises the head.
        overrides: architecture fields, e.g. ``drop_path_rate=0.1`` or ``fusion="parallel"``.

    Returns the model in train mode (call ``.eval()`` for inference), as timm does.
    """
    if name in list_variants():
        if pretrained:
            raise ValueError(f"{name!r} is an architecture; name a zoo checkpoint (uniformerv2 zoo) for weights")
        if num_classes is not None:
            overrides["num_classes"] = num_classes
        return UniFormerV2(variant_config(name, **overrides))
    if name not in list_pretrained():
        raise KeyError(_unknown_message(name))
    if pretrained:
        return load_model(name, num_classes=num_classes, **overrides).train()
    cfg = get_pretrained_cfg(name)
    model = UniFormerV2(variant_config(cfg.arch, num_classes=num_classes or cfg.num_classes, **overrides))
    model.pretrained_cfg = _zoo_meta(name, model.config.num_classes)
    return model


def _unknown_message(name: str) -> str:
    close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `uniformerv2 zoo` for the list"
    return f"unknown model {name!r}: not a zoo name, variant, existing path or Hub repo id{hint}"


def _zoo_meta(name: str, num_classes: int) -> dict[str, Any]:
    cfg = get_pretrained_cfg(name)
    labels = cfg.label_names() if num_classes == cfg.num_classes else None
    return {"labels": labels, "preprocess": cfg.preprocess, "source": name}


def _from_directory(source: str | Path, num_classes: int | None) -> UniFormerV2:
    """A model directory or Hub repo in our layout, its classifier resized if asked."""
    model = from_pretrained_dir(source)
    if num_classes is not None and num_classes != model.config.num_classes:
        model.reset_classifier(num_classes)
        model.pretrained_cfg["labels"] = None
    return model


def _from_file(path: Path, num_classes: int | None, overrides: dict[str, Any]) -> UniFormerV2:
    """A model from a checkpoint file or model directory, with the architecture, preprocessing and
    labels the file stores (:func:`~uniformerv2.weights.stored.describe_checkpoint`)."""
    if path.is_dir():
        return _from_directory(path, num_classes)
    sd, fmt, extras = load_checkpoint(path)
    if fmt == "clip":
        raise CheckpointError(
            f"{path}: a CLIP image encoder has no video layers or classifier; build a model with "
            "create_model('uniformerv2_b16', num_classes=...) and load_weights(model, path) to initialise it"
        )
    described = describe_checkpoint(sd, fmt, extras, str(path), overrides)
    config = described.config
    classes = config.num_classes
    if num_classes is not None and num_classes != classes:
        config.num_classes = num_classes
    model = UniFormerV2(config)
    load_weights(model, sd, fmt="ours", name=str(path))
    model.pretrained_cfg = {
        "labels": described.labels if config.num_classes == classes else None,
        "preprocess": described.preprocess,
        "source": str(path),
        "format": fmt,
    }
    return model


def load_model(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    num_classes: int | None = None,
    labels: list[str] | None = None,
    **overrides: Any,
) -> UniFormerV2:
    """Load a ready-to-use model in eval mode.

    Args:
        source: a zoo name (``uniformerv2-b16-k400-k710-8x224``), a local checkpoint (official
            ``.pyth``, MMAction2 ``.pth``, ``.safetensors``) or model directory, or a Hugging Face
            Hub repo id (``org/name`` or ``hf-hub:org/name``) in our layout.
        device: where to put the model.
        dtype: parameter dtype (e.g. ``torch.bfloat16``); autocast is usually the better choice.
        num_classes: re-initialise the classifier with this many classes.
        labels: class names in head order, overriding what the checkpoint carries.
        overrides: architecture fields a plain state dict cannot tell, e.g. ``return_list``.

    ``model.pretrained_cfg`` holds ``labels`` and ``preprocess`` (a :class:`PreprocessConfig`).
    """
    text = str(source)
    if text in list_pretrained():
        cfg = get_pretrained_cfg(text)
        if cfg.checkpoint_format == "clip":
            raise CheckpointError(
                f"{text} is a CLIP image encoder; use it through load_weights() to initialise a model"
            )
        model = UniFormerV2(variant_config(cfg.arch, num_classes=cfg.num_classes, **overrides))
        load_weights(model, fetch_weights(cfg))
        if num_classes is not None and num_classes != cfg.num_classes:
            model.reset_classifier(num_classes)
        model.pretrained_cfg = _zoo_meta(text, model.config.num_classes)
    elif Path(text).exists():
        model = _from_file(Path(text), num_classes, overrides)
    elif re.fullmatch(r"(hf-hub:)?[\w.-]+/[\w.-]+", text) and not text.endswith(
        (".pyth", ".pth", ".pt", ".safetensors")
    ):
        model = _from_directory(text, num_classes)  # a Hub snapshot (UNIFORMERV2_OFFLINE: cache only)
    else:
        raise KeyError(_unknown_message(text))
    if labels is not None:
        if len(labels) != model.config.num_classes:
            raise ValueError(f"{len(labels)} labels given for a {model.config.num_classes}-class model")
        model.pretrained_cfg["labels"] = list(labels)
    if not model.pretrained_cfg.get("labels"):
        model.pretrained_cfg["labels"] = [f"LABEL_{i}" for i in range(model.config.num_classes)]
    return model.to(device=device, dtype=dtype).eval()


def from_pretrained(source: str | os.PathLike[str], **kwargs: Any) -> UniFormerV2:
    """:func:`load_model` under the Hugging Face name: a Hub repo id (``org/name``), a model
    directory, a checkpoint file or a zoo name; same keyword arguments, eval mode."""
    return load_model(source, **kwargs)
