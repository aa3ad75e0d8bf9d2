"""Model zoo: registered checkpoints, their label lists, and cached downloads."""

from uniformerv2.zoo.download import download_url, fetch_weights
from uniformerv2.zoo.labels import list_label_sets, load_label_map, load_labels, read_label_file
from uniformerv2.zoo.pretrained import (
    DEFAULT_MODEL,
    PretrainedCfg,
    UnknownPretrainedError,
    WeightSource,
    get_pretrained_cfg,
    list_pretrained,
    register_pretrained,
)

__all__ = [
    "DEFAULT_MODEL",
    "PretrainedCfg",
    "UnknownPretrainedError",
    "WeightSource",
    "download_url",
    "fetch_weights",
    "get_pretrained_cfg",
    "list_label_sets",
    "list_pretrained",
    "load_label_map",
    "load_labels",
    "read_label_file",
    "register_pretrained",
]
