"""Pure state-dict conversions: format detection, official / MMAction2 / CLIP -> ours and back,
architecture inference, head re-ordering between label orders.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from uniformerv2.config import UniFormerV2Config
from uniformerv2.errors import CheckpointError
from uniformerv2.weights.keymap import (
    HF_CLIP_IGNORE,
    HF_CLIP_QKV,
    HF_CLIP_RULES,
    MMACTION2_IGNORE,
    MMACTION2_RULES,
    OFFICIAL_RULES,
    fuse,
    remap,
)

Format = Literal["ours", "official", "mmaction2", "clip"]
StateDict = dict[str, torch.Tensor]

_WRAPPERS = ("model_state", "state_dict", "model", "module")


def unwrap(obj: Any, source: str = "checkpoint") -> StateDict:
    """Find the tensor dict inside a training checkpoint (``{"model_state": ...}``, ``{"state_dict": ...}``)."""
    for _ in range(3):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPERS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is not None:
                obj = inner
                continue
        raise CheckpointError(f"{source}: no state dict found (expected tensors or a 'model_state'/'state_dict' entry)")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def detect_format(sd: Mapping[str, torch.Tensor], source: str = "") -> Format:
    """Tell the layout of a state dict from sentinel keys (``source`` names it in the error)."""
    keys = set(sd)
    if any(k.startswith("cls_head.") or k.startswith("backbone.transformer.norm.") for k in keys):
        return "mmaction2"
    if any(k.startswith("backbone.transformer.") for k in keys):
        return "official"
    if "visual.class_embedding" in keys or "visual.conv1.weight" in keys:
        return "clip"
    if "vision_model.embeddings.class_embedding" in keys:
        return "clip"  # Hugging Face transformers layout
    if "fusion.query" in keys or any(k.startswith("blocks.") for k in keys):
        return "ours"
    if "class_embedding" in keys and any(k.startswith("transformer.resblocks.") for k in keys):
        if "transformer.temporal_cls_token" in keys:
            return "official"  # official keys without the ``backbone.`` wrapper
        return "clip"
    where = f"{source}: " if source else ""
    raise CheckpointError(
        f"{where}unrecognised state dict: not a UniFormerV2 (ours/official/MMAction2) or CLIP checkpoint"
    )


def to_ours(sd: Mapping[str, torch.Tensor], fmt: Format | None = None, source: str = "checkpoint") -> StateDict:
    """Convert a full UniFormerV2 state dict (official or MMAction2 layout) to ours."""
    fmt = fmt or detect_format(sd)
    if fmt == "ours":
        return dict(sd)
    if fmt == "official":
        sd = {k[len("backbone.") :] if k.startswith("backbone.") else k: v for k, v in sd.items()}
        return remap(sd, OFFICIAL_RULES, reverse=True, source=source)
    if fmt == "mmaction2":
        return remap(sd, MMACTION2_RULES, reverse=True, ignore=MMACTION2_IGNORE, source=source)
    raise CheckpointError(
        f"{source}: a CLIP checkpoint holds a backbone only; use clip_to_ours() to initialise from it"
    )


def convert_to_ours(sd: Mapping[str, torch.Tensor], fmt: Format, source: str = "checkpoint") -> StateDict:
    """Any supported layout in ours; a CLIP encoder gives our backbone keys with a one-frame stem
    (:func:`load_weights` inflates it to the model's)."""
    return clip_to_ours(sd, stem_kernel_t=1, source=source) if fmt == "clip" else to_ours(sd, fmt, source=source)


def from_ours(sd: Mapping[str, torch.Tensor], fmt: Literal["official", "mmaction2"]) -> StateDict:
    """Our state dict in the official (``backbone.`` prefixed) or MMAction2 layout."""
    if fmt == "official":
        return {"backbone." + k: v for k, v in remap(sd, OFFICIAL_RULES).items()}
    return remap(sd, MMACTION2_RULES)


def inflate_conv(weight_2d: torch.Tensor, time_dim: int) -> torch.Tensor:
    """Place a 2-D patch kernel in the centre temporal slice of a (out, in, t, p, p) kernel.

    Official ``inflate_weight(center=True)``.
    """
    if weight_2d.ndim == 5:
        weight_2d = weight_2d[:, :, weight_2d.shape[2] // 2]
    out = weight_2d.new_zeros(weight_2d.shape[0], weight_2d.shape[1], time_dim, *weight_2d.shape[2:])
    out[:, :, time_dim // 2] = weight_2d
    return out


_CLIP_DROP = re.compile(r"^(proj|ln_post\.(weight|bias))$")


def hf_clip_to_openai(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> StateDict:
    """Hugging Face ``transformers`` CLIP keys -> OpenAI CLIP visual keys (``visual.`` stripped).

    Declarative (:data:`~uniformerv2.weights.keymap.HF_CLIP_RULES`): q/k/v projections are
    concatenated into ``in_proj``, the text tower and joint-space projections are ignored, and any
    other key raises.
    """
    fused, rest = fuse(sd, HF_CLIP_QKV, source=source)
    return {**remap(rest, HF_CLIP_RULES, reverse=True, ignore=HF_CLIP_IGNORE, source=source), **fused}


def clip_to_ours(sd: Mapping[str, torch.Tensor], stem_kernel_t: int = 1, source: str = "checkpoint") -> StateDict:
    """CLIP visual weights -> our backbone keys.

    Accepts OpenAI's layout (``visual.*``), extracted encoders (the official ``vit_b16.pth``,
    MMAction2's ``clipVisualEncoder`` files) and the Hugging Face ``transformers`` layout
    (``vision_model.*``, :func:`hf_clip_to_openai`). Drops ``proj`` and ``ln_post`` as the official
    extraction does and inflates ``conv1`` into the centre of a ``stem_kernel_t``-frame stem.
    """
    if any(k.startswith("vision_model.") for k in sd):
        sd = hf_clip_to_openai(sd, source=source)
    if any(k.startswith("visual.") for k in sd):
        sd = {k[len("visual.") :]: v for k, v in sd.items() if k.startswith("visual.")}
    sd = {k: v for k, v in sd.items() if not _CLIP_DROP.match(k)}
    if "conv1.weight" not in sd or "class_embedding" not in sd:
        raise CheckpointError(f"{source}: not a CLIP visual state dict: conv1.weight / class_embedding missing")
    sd["conv1.weight"] = inflate_conv(sd["conv1.weight"], stem_kernel_t)
    out: StateDict = {}
    for key, value in sd.items():
        out[re.sub(r"^transformer\.resblocks\.", "blocks.", key)] = value
    unknown = [k for k in out if not re.match(r"^(conv1|class_embedding|positional_embedding|ln_pre|blocks)\b", k)]
    if unknown:
        raise CheckpointError(f"{source}: CLIP state dict has keys of unknown layout: {', '.join(unknown[:10])}")
    return out


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def infer_config(sd: Mapping[str, torch.Tensor], **overrides: Any) -> UniFormerV2Config:
    """Architecture of a state dict in our layout.

    Width, depth, patch, resolution, stem kernel, local MHRA, global blocks, classes and frozen are
    read off tensor shapes. Global blocks are assumed to follow the last backbone blocks (true of
    every released file); pass ``return_list`` to override. Heads assume a head width of 64.
    """
    try:
        width = sd["class_embedding"].shape[0]
        conv = sd["conv1.weight"]
        grid = math.isqrt(sd["positional_embedding"].shape[0] - 1)
    except KeyError as exc:
        raise CheckpointError(f"cannot infer the architecture: key {exc} missing") from None
    layers = _count(sd, r"^blocks\.(\d+)\.")
    n_layers = _count(sd, r"^global_blocks\.(\d+)\.")
    lmhra = (
        "double"
        if "blocks.0.lmhra2.reduce.weight" in sd
        else "single"
        if "blocks.0.lmhra1.reduce.weight" in sd
        else "none"
    )
    kwargs: dict[str, Any] = dict(
        input_resolution=grid * conv.shape[-1],
        patch_size=conv.shape[-1],
        width=width,
        layers=layers,
        heads=max(1, width // 64),
        temporal_downsample=conv.shape[2] > 1,
        stem_kernel_t=conv.shape[2] if conv.shape[2] > 1 else 3,
        local_mhra=lmhra,
        return_list=tuple(range(layers - n_layers, layers)),
        n_dim=width,
        n_head=max(1, width // 64),
        frozen="balance" not in sd,
        num_classes=sd["head.fc.weight"].shape[0] if "head.fc.weight" in sd else 0,
        fusion="parallel" if "fusion.proj.weight" in sd else "sequential",
    )
    if lmhra != "none":
        reduced = sd["blocks.0.lmhra1.reduce.weight"].shape[0]
        kwargs["dw_reduction"] = 1.5 if int(width // 1.5) == reduced else width / reduced
    if n_layers:
        kwargs["mlp_factor"] = sd["global_blocks.0.mlp.c_fc.weight"].shape[0] / width
    kwargs.update(overrides)
    return UniFormerV2Config(**kwargs)


def permute_head(sd: StateDict, order: Sequence[int]) -> StateDict:
    """New head whose row k is old row ``order[k]`` (re-orders classes, or selects a subset)."""
    out = dict(sd)
    index = torch.as_tensor(list(order), dtype=torch.long)
    for key in ("head.fc.weight", "head.fc.bias"):
        if key not in sd:
            raise CheckpointError("the state dict has no classifier to re-order")
        if int(index.max()) >= sd[key].shape[0] or int(index.min()) < 0:
            raise CheckpointError(f"label map indexes row {int(index.max())} of a {sd[key].shape[0]}-class head")
        out[key] = sd[key].index_select(0, index)
    return out


def label_permutation(source: Sequence[str], target: Sequence[str]) -> list[int]:
    """Indices ``p`` with ``source[p[k]] == target[k]``; raises listing the names that do not match."""
    where = {name: i for i, name in enumerate(source)}
    missing = [name for name in target if name not in where]
    if missing or len(set(source)) != len(source):
        raise CheckpointError(f"label lists do not match by name ({len(missing)} missing, e.g. {missing[:3]})")
    return [where[name] for name in target]
