"""Named architectures of the released UniFormerV2 family and the ``create_model`` registry.

A variant sets architecture only; weights and preprocessing are zoo entries
(:mod:`uniformerv2.zoo`). Layouts (official-behaviour §2.5):

- Kinetics layout (K400/600/700/710, MiT, ActivityNet, HACS): no local MHRA, 1 x p x p stem,
  4 global blocks after the last 4 backbone blocks.
- SSv2 layout (SSv1/SSv2): double local MHRA, 3 x p x p stem with temporal stride 2,
  8 global blocks on blocks 4-11 (B/16) or 16 on blocks 8-23 (L/14), drop path 0.2 / 0.4.
- Frozen: Kinetics layout whose output is the video token alone (no ``balance``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from uniformerv2.config import UniFormerV2Config
from uniformerv2.model.uniformerv2 import UniFormerV2

_VARIANTS: dict[str, Callable[[], dict[str, Any]]] = {}


def register_variant(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Register a function returning architecture kwargs under the function's name."""
    _VARIANTS[fn.__name__] = fn
    return fn


def _b16() -> dict[str, Any]:
    return dict(input_resolution=224, patch_size=16, width=768, layers=12, heads=12, n_dim=768, n_head=12)


def _l14(resolution: int = 224) -> dict[str, Any]:
    return dict(input_resolution=resolution, patch_size=14, width=1024, layers=24, heads=16, n_dim=1024, n_head=16)


_SSV2 = dict(local_mhra="double", temporal_downsample=True, backbone_drop_path_rate=0.2, drop_path_rate=0.4)


@register_variant
def uniformerv2_b16() -> dict[str, Any]:
    """B/16, Kinetics layout (global blocks after blocks 8-11)."""
    return {**_b16(), "return_list": (8, 9, 10, 11)}


@register_variant
def uniformerv2_l14() -> dict[str, Any]:
    """L/14 at 224, Kinetics layout (global blocks after blocks 20-23)."""
    return {**_l14(), "return_list": (20, 21, 22, 23)}


@register_variant
def uniformerv2_l14_336() -> dict[str, Any]:
    """L/14 at 336, Kinetics layout."""
    return {**_l14(336), "return_list": (20, 21, 22, 23)}


@register_variant
def uniformerv2_l14_336_frozen() -> dict[str, Any]:
    """L/14 at 336 with the frozen-backbone head (video token only)."""
    return {**uniformerv2_l14_336(), "frozen": True}


@register_variant
def uniformerv2_b16_ssv2() -> dict[str, Any]:
    """B/16, SSv2 layout: 8 global blocks after blocks 4-11, 174 classes."""
    return {**_b16(), **_SSV2, "return_list": tuple(range(4, 12)), "num_classes": 174}


@register_variant
def uniformerv2_l14_ssv2() -> dict[str, Any]:
    """L/14, SSv2 layout: 16 global blocks after blocks 8-23, 174 classes."""
    return {**_l14(), **_SSV2, "return_list": tuple(range(8, 24)), "num_classes": 174}


def list_variants() -> list[str]:
    """Names accepted by :func:`variant_config`."""
    return sorted(_VARIANTS)


def variant_config(name: str, **overrides: Any) -> UniFormerV2Config:
    """Architecture config of a named variant with ``overrides`` applied.

    Raises:
        KeyError: unknown name (the message suggests close names).
    """
    if name not in _VARIANTS:
        close = difflib.get_close_matches(name, list(_VARIANTS), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(list_variants())}"
        raise KeyError(f"unknown UniFormerV2 variant {name!r}{hint}")
    return UniFormerV2Config(**{**_VARIANTS[name](), **overrides})


def create_variant(name: str, **overrides: Any) -> UniFormerV2:
    """Build a randomly initialised model of a named variant (train mode, no weights)."""
    return UniFormerV2(variant_config(name, **overrides))
