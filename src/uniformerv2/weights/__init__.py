"""Checkpoint formats: official, MMAction2, CLIP and ours; conversion and strict loading."""

from uniformerv2.weights.convert import (
    clip_to_ours,
    detect_format,
    from_ours,
    infer_config,
    inflate_conv,
    label_permutation,
    permute_head,
    to_ours,
)
from uniformerv2.weights.hub import from_pretrained, push_to_hub, save_pretrained
from uniformerv2.weights.io import LoadReport, load_weights, read_state_dict

__all__ = [
    "LoadReport",
    "clip_to_ours",
    "detect_format",
    "from_ours",
    "from_pretrained",
    "infer_config",
    "inflate_conv",
    "label_permutation",
    "load_weights",
    "permute_head",
    "push_to_hub",
    "read_state_dict",
    "save_pretrained",
    "to_ours",
]
