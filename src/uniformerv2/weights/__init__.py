"""Checkpoint formats: official, MMAction2, CLIP (OpenAI, transformers) and ours; one loading pipeline
(:func:`load_checkpoint`), strict loading with head policies (:func:`load_weights`)."""

from uniformerv2.weights.convert import (
    clip_to_ours,
    convert_to_ours,
    detect_format,
    from_ours,
    hf_clip_to_openai,
    infer_config,
    inflate_conv,
    label_permutation,
    permute_head,
    to_ours,
)
from uniformerv2.weights.hub import from_pretrained, push_to_hub, save_pretrained
from uniformerv2.weights.io import (
    LoadReport,
    keep_head,
    load_checkpoint,
    load_weights,
    map_head,
    read_checkpoint,
    read_state_dict,
    reinit_head,
    resize_head,
)

__all__ = [
    "LoadReport",
    "clip_to_ours",
    "convert_to_ours",
    "detect_format",
    "from_ours",
    "from_pretrained",
    "hf_clip_to_openai",
    "infer_config",
    "inflate_conv",
    "keep_head",
    "label_permutation",
    "load_checkpoint",
    "load_weights",
    "map_head",
    "permute_head",
    "push_to_hub",
    "read_checkpoint",
    "read_state_dict",
    "reinit_head",
    "resize_head",
    "save_pretrained",
    "to_ours",
]
