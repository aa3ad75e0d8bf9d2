"""Architecture configuration of UniFormerV2 (architecture only; preprocessing lives in
:mod:`uniformerv2.preprocess`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

LocalMHRA = Literal["none", "single", "double"]
Fusion = Literal["sequential", "parallel", "hierarchical_kv", "hierarchical_q"]
_LOCAL_CHOICES = ("none", "single", "double")
_FUSION_CHOICES = ("sequential", "parallel", "hierarchical_kv", "hierarchical_q")


@dataclass
class UniFormerV2Config:
    """Every option of the paper and of the official ``VisionTransformer`` constructor.

    Attributes:
        input_resolution: resolution the spatial position embedding was trained at (224 / 336).
            Other input sizes work: the embedding is interpolated bicubically.
        patch_size: spatial patch size p of the stem.
        width: backbone width C (CLIP ViT width).
        layers: number of backbone blocks.
        heads: attention heads of the backbone blocks (head dim 64 in every released model).
        temporal_downsample: stem kernel ``stem_kernel_t`` x p x p with temporal stride 2
            (T' = T/2) instead of 1 x p x p.
        stem_kernel_t: temporal kernel of the downsampling stem (official ``kernel_size``, 3).
        local_mhra: local temporal MHRA in every backbone block: "none" (plain CLIP block, the
            Kinetics layout), "single" (before attention, the paper's equation) or "double"
            (before attention and before the MLP, every SSv1/SSv2 release).
        dw_reduction: bottleneck ratio of the local MHRA; reduced width ``int(C // dw_reduction)``.
        return_list: 0-based backbone block indices followed by a global UniBlock.
        n_dim: width of the global UniBlocks (equal to ``width`` in every release).
        n_head: heads of the global UniBlocks.
        mlp_factor: MLP ratio of the global UniBlocks (hidden ``round(mlp_factor * n_dim)``).
        backbone_drop_path_rate: drop-path rate of the last backbone block (linear from 0).
        drop_path_rate: drop-path rate of the last global block (linear from 0).
        mlp_dropout: dropout after the activation in each global block's MLP (one per block,
            or one value for all).
        cls_dropout: dropout between the head LayerNorm and the classifier.
        num_classes: classifier outputs; 0 makes the head an identity after its LayerNorm.
        frozen: frozen-backbone variant: no ``balance``, the output is the video token alone.
        fusion: multi-stage fusion of the global blocks' outputs. "sequential" is the official
            code and every released weight; the others are the paper's variants (no released
            weights exist for them).
        grad_checkpointing: recompute backbone blocks in the backward pass to save memory.
    """

    input_resolution: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    heads: int = 12
    temporal_downsample: bool = False
    stem_kernel_t: int = 3
    local_mhra: LocalMHRA = "none"
    dw_reduction: float = 1.5
    return_list: tuple[int, ...] = (8, 9, 10, 11)
    n_dim: int = 768
    n_head: int = 12
    mlp_factor: float = 4.0
    backbone_drop_path_rate: float = 0.0
    drop_path_rate: float = 0.0
    mlp_dropout: tuple[float, ...] = field(default=(0.5,))
    cls_dropout: float = 0.5
    num_classes: int = 400
    frozen: bool = False
    fusion: Fusion = "sequential"
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        self.return_list = tuple(int(i) for i in self.return_list)
        if isinstance(self.mlp_dropout, (int, float)):
            self.mlp_dropout = (float(self.mlp_dropout),)
        self.mlp_dropout = tuple(float(p) for p in self.mlp_dropout)
        if len(self.mlp_dropout) == 1 and self.n_layers != 1:  # one rate for every global block (or none)
            self.mlp_dropout = self.mlp_dropout * self.n_layers
        if self.local_mhra not in _LOCAL_CHOICES:
            raise ValueError(f"local_mhra must be one of {_LOCAL_CHOICES}, got {self.local_mhra!r}")
        if self.fusion not in _FUSION_CHOICES:
            raise ValueError(f"fusion must be one of {_FUSION_CHOICES}, got {self.fusion!r}")
        if self.n_dim != self.width:
            raise ValueError(
                f"n_dim ({self.n_dim}) must equal width ({self.width}): global blocks read backbone tokens"
            )
        if self.width % self.heads or self.n_dim % self.n_head:
            raise ValueError("width and n_dim must be divisible by their number of heads")
        if list(self.return_list) != sorted(set(self.return_list)):
            raise ValueError(f"return_list must be strictly increasing, got {list(self.return_list)}")
        if self.return_list and not 0 <= self.return_list[0] <= self.return_list[-1] < self.layers:
            raise ValueError(f"return_list {list(self.return_list)} must index blocks 0..{self.layers - 1}")
        if len(self.mlp_dropout) != self.n_layers:
            raise ValueError(f"mlp_dropout has {len(self.mlp_dropout)} entries for {self.n_layers} global blocks")
        if self.frozen and self.n_layers == 0:
            raise ValueError("a frozen model needs at least one global block")

    @property
    def n_layers(self) -> int:
        """Number of global UniBlocks."""
        return len(self.return_list)

    @property
    def grid_size(self) -> int:
        """Side of the patch grid the position embedding was trained at."""
        return self.input_resolution // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["return_list"] = list(self.return_list)
        data["mlp_dropout"] = list(self.mlp_dropout)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UniFormerV2Config:
        """Build from :meth:`to_dict` output (e.g. ``config.json``), checking every field's type.

        Raises:
            ValueError: an unknown field or a value of the wrong type (the message names the field).
        """
        check_field_types(cls, data)
        return cls(**data)

    @classmethod
    def from_official_kwargs(cls, kwargs: dict[str, Any]) -> UniFormerV2Config:
        """Translate the official ``VisionTransformer`` constructor arguments.

        ``t_size`` is dropped (the frame count is read from the input), ``no_lmhra`` /
        ``double_lmhra`` become ``local_mhra``, ``kernel_size`` becomes ``stem_kernel_t`` and
        ``n_layers`` is checked against ``return_list`` as the official code asserts.
        Keys that are not architecture (``batch``, ``seed``, ``t_size``) are ignored.
        """
        kw = dict(kwargs)
        return_list = tuple(kw.pop("return_list", (8, 9, 10, 11)))
        n_layers = kw.pop("n_layers", len(return_list))
        if n_layers != len(return_list):
            raise ValueError(f"n_layers={n_layers} but return_list has {len(return_list)} entries")
        no_lmhra = bool(kw.pop("no_lmhra", False))
        double = bool(kw.pop("double_lmhra", True))
        local = "none" if no_lmhra else ("double" if double else "single")
        renames = {"kernel_size": "stem_kernel_t", "use_checkpoint": "grad_checkpointing"}
        out: dict[str, Any] = {"return_list": return_list, "local_mhra": local}
        for key, value in kw.items():
            key = renames.get(key, key)
            if key in cls.__dataclass_fields__:
                out[key] = value
        out.setdefault("temporal_downsample", True)  # official default
        return cls(**out)


def check_field_types(cls: type, data: Mapping[str, Any], section: str = "") -> None:
    """Check JSON-like ``data`` against the type hints of the dataclass ``cls``.

    Args:
        cls: a dataclass (``UniFormerV2Config``, ``PreprocessConfig``).
        data: field values as read from JSON.
        section: prefix for field names in messages (``"architecture"`` gives ``architecture.width``).

    Raises:
        ValueError: ``field 'section.name': ...`` for the first unknown field or wrongly typed value.
    """
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        where = f"{section}.{key}" if section else str(key)
        if key not in names:
            raise ValueError(f"field {where!r}: unknown (known: {', '.join(sorted(names))})")
        if not _matches(value, hints[key]):
            raise ValueError(f"field {where!r}: expected {_describe(hints[key])}, got {json.dumps(value)}")


def _matches(value: Any, hint: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _describe(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin is tuple:
        plural = {int: "integers", float: "numbers", bool: "true/false values", str: "strings"}.get(args[0], "values")
        return f"a list of {plural}" if len(args) == 2 and args[1] is Ellipsis else f"a list of {len(args)} {plural}"
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "an object"}
    return names.get(origin or hint, str(hint))
