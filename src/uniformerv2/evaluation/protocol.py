"""The test protocol of an evaluation, in words.

Everything that changes a reported number is stated before an evaluation starts: frames and
their sampling, views, resize and crop, normalisation, channel order, label order, decoding and
precision (official behaviour §3.3-3.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from uniformerv2.evaluation.lists import identify_label_set
from uniformerv2.preprocess import PreprocessConfig

__all__ = ["describe_protocol", "format_protocol"]


def _sampling(cfg: PreprocessConfig) -> str:
    if cfg.sampling == "segment":
        return (
            f"{cfg.num_frames} frames per clip, segment sampling (official test: the video is cut into "
            f"{cfg.num_frames} equal segments; clip k of K takes the frame (k+1)/(K+1) into each)"
        )
    return f"{cfg.num_frames} frames per clip, dense sampling every {cfg.frame_interval} frames"


def _crops(cfg: PreprocessConfig) -> str:
    crop = (
        f"3 crops of {cfg.crop_size} (both ends and centre of the long side)"
        if cfg.num_crops == 3
        else f"centre crop of {cfg.crop_size}"
    )
    return f"short side to {cfg.crop_size} (bilinear, no antialias, after normalising), {crop}"


def _label_order(labels: Sequence[str]) -> str:
    name = identify_label_set(labels)
    first = ", ".join(repr(n) for n in labels[:3])
    return f"{name or 'checkpoint-specific'}, {len(labels)} classes (first: {first})"


def describe_protocol(
    cfg: PreprocessConfig,
    labels: Sequence[str],
    *,
    model_source: str,
    list_source: str,
    list_order: str,
    count: int,
    amp_dtype: Any = None,
    decode_short_side: int | None = None,
) -> dict[str, Any]:
    """Every setting that determines the result, as a JSON-ready dict (also stored in the report).

    Args:
        cfg: the preprocessing with the views used.
        labels: class names in head order.
        model_source: the checkpoint (zoo name, path, Hub id) or the model's recorded source.
        list_source: the evaluation list.
        list_order: how list labels became head rows (:attr:`EvalList.order`).
        count: videos in the list.
        amp_dtype: autocast dtype, or None for the model's precision.
        decode_short_side: decoder-side downscaling, or None for full resolution.
    """
    return {
        "model": model_source,
        "list": list_source,
        "videos": count,
        "list_labels": list_order,
        "num_frames": cfg.num_frames,
        "sampling": _sampling(cfg),
        "views": f"{cfg.num_clips}x{cfg.num_crops}",
        "num_clips": cfg.num_clips,
        "num_crops": cfg.num_crops,
        "aggregation": "softmax per view, mean over the views (the official sum ranks the same)",
        "resize_crop": _crops(cfg),
        "crop_size": cfg.crop_size,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "channel_order": cfg.channel_order,
        "label_order": _label_order(labels),
        "decoding": "full resolution" if decode_short_side is None else f"short side at most {decode_short_side} px",
        "precision": "fp32" if amp_dtype is None else f"{amp_dtype} autocast",
    }


def format_protocol(protocol: dict[str, Any]) -> str:
    """The protocol as the block printed before an evaluation starts."""
    rows = [
        ("model", protocol["model"]),
        ("list", f"{protocol['list']} ({protocol['videos']} videos); labels: {protocol['list_labels']}"),
        ("frames", protocol["sampling"]),
        (
            "views",
            f"{protocol['num_clips']} clips x {protocol['num_crops']} crops = "
            f"{protocol['num_clips'] * protocol['num_crops']} per video; {protocol['aggregation']}",
        ),
        ("resize/crop", protocol["resize_crop"]),
        (
            "normalise",
            f"mean {tuple(protocol['mean'])}, std {tuple(protocol['std'])} on [0, 1]; "
            f"channel order {protocol['channel_order']}",
        ),
        ("label order", protocol["label_order"]),
        ("decoding", f"{protocol['decoding']}; precision {protocol['precision']}"),
    ]
    if "fingerprint" in protocol:
        rows.append(("fingerprint", protocol["fingerprint"]))
    return "\n".join(["evaluation protocol"] + [f"  {key + ':':<13}{value}" for key, value in rows])
