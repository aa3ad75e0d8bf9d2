"""Snippet feature sequences of long videos for temporal action localisation (ActionFormer, TriDet).

A video of N frames is cut into snippets with the windowing of :func:`uniformerv2.inference.timeline`:
snippet j spans frames ``[j * stride, j * stride + window)`` (end exclusive); the last snippet
ends at or before frame N, and a video shorter than one window gives one snippet over all of it.
The model sees T = ``num_frames`` frames of each snippet, frame i being
``start + floor((i + 1/2) * window / T)`` (the centre of the i-th of T equal segments), so with
``window = T`` it sees T consecutive frames. Each snippet is resized (short side to the crop
size), centre-cropped (or cropped left/centre/right and averaged with ``crops=3``) and its
feature is ``model.forward_features``: the fused video representation before the head's
LayerNorm, the same vector :func:`uniformerv2.inference.embed` pools.

Decoding streams through the video once (shared with ``timeline``), so memory depends on the
window, not on the video length; only the (num_snippets, n) result grows with the video.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from uniformerv2.atomic import atomic_save_npy, atomic_write_json
from uniformerv2.errors import VideoDecodeError
from uniformerv2.inference._timeline import _frames_to_windows, _resolve_lengths, _stream_windows
from uniformerv2.inference.engine import (
    Result,
    VideoLike,
    as_video_list,
    describe,
    open_source,
    parse_views,
    resolve_model,
    view_config,
)
from uniformerv2.runtime import autocast

__all__ = ["SnippetFeatures", "snippet_features", "snippet_features_many", "snippet_lengths", "crops_from_views"]

_logger = logging.getLogger(__name__)


@dataclass
class SnippetFeatures:
    """Features of consecutive snippets of one video.

    Attributes:
        features: (num_snippets, n) float32, n = ``model.num_features``.
        start_frame: first frame of each snippet.
        end_frame: frame after the last one of each snippet (exclusive).
        fps: frame rate used for the times (None when unknown, e.g. arrays without ``fps_override``).
        window: frames each snippet spans.
        stride: frames between snippet starts (the feature stride).
        num_frames: frames in the video.
        cls: per requested layer, the class token of each frame, (num_snippets, T', C).
        patches: per requested layer, the patch tokens, (num_snippets, T', h, w, C).
    """

    features: torch.Tensor
    start_frame: list[int]
    end_frame: list[int]
    fps: float | None
    window: int
    stride: int
    num_frames: int
    cls: dict[int, torch.Tensor] = field(default_factory=dict)
    patches: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def start(self) -> list[float] | None:
        """Snippet start times in seconds (``start_frame / fps``), None without a frame rate."""
        return None if self.fps is None else [f / self.fps for f in self.start_frame]

    @property
    def end(self) -> list[float] | None:
        """Snippet end times in seconds (``end_frame / fps``), None without a frame rate."""
        return None if self.fps is None else [f / self.fps for f in self.end_frame]

    @property
    def duration(self) -> float | None:
        """Video length in seconds (``num_frames / fps``)."""
        return None if self.fps is None else self.num_frames / self.fps


def crops_from_views(views: tuple[int, int] | str | None) -> int:
    """Spatial crops per snippet from an ``embed`` ``views`` argument: None -> 1; ``(1, S)`` -> S.

    Snippets have no temporal views, so a clip count other than 1 is refused.
    """
    if views is None:
        return 1
    clips, crops = parse_views(views) if isinstance(views, str) else views
    if int(clips) != 1 or int(crops) not in (1, 3):
        raise ValueError(f"snippet features take views 1x1 or 1x3 (one clip per snippet), got {clips}x{crops}")
    return int(crops)


def snippet_lengths(model: Any, window: int | None, stride: int | None) -> tuple[int, int]:
    """(window, stride) in frames with the defaults filled in: T (the checkpoint's ``num_frames``), half a window."""
    return _resolve_lengths(float("nan"), view_config(model), window, stride, None, None)


def snippet_features(
    video: VideoLike,
    model: Any = None,
    *,
    window: int | None = None,
    stride: int | None = None,
    crops: int = 1,
    layers: Sequence[int] | None = None,
    fps_override: float | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | str | None = None,
    decode_short_side: int | None = None,
    progress: bool = False,
) -> SnippetFeatures:
    """Per-snippet pooled features of one video (module docstring: the snippet and sampling rule).

    Args:
        video: a path or (T, H, W, 3) uint8 frames.
        model: as for :func:`uniformerv2.inference.predict`.
        window: frames per snippet; default the checkpoint's ``num_frames`` (T).
        stride: frames between snippet starts; default half a window.
        crops: 1 (centre crop) or 3 (left/centre/right, features averaged; tokens from the centre).
        layers: blocks (negative counts from the end) whose class and patch tokens to keep.
        fps_override: frame rate for the times instead of the container's.
        batch_size: most crops per forward pass.
        device: as for :func:`uniformerv2.inference.predict`.
        amp_dtype: as for :func:`uniformerv2.inference.predict`.
        decode_short_side: as for :func:`uniformerv2.inference.predict`.
        progress: show a tqdm bar over snippets.

    Returns:
        :class:`SnippetFeatures`.

    Raises:
        VideoDecodeError: the video cannot be read.
    """
    if crops not in (1, 3):
        raise ValueError(f"crops must be 1 or 3, got {crops}")
    net, dev = resolve_model(model, device)
    cfg = view_config(net)
    keep = None if layers is None else list(layers)
    with open_source(video, 0, decode_short_side) as reader:
        fps = float(fps_override) if fps_override else reader.fps
        window, stride = _resolve_lengths(fps, cfg, window, stride, None, None)
        starts = _frames_to_windows(reader.num_frames, window, stride)
        _logger.info("%s: %d snippets of %d frames, stride %d", reader.path, len(starts), window, stride)
        stream = tqdm(
            _stream_windows(reader, starts, window, cfg, crops), total=len(starts), disable=not progress, unit="snippet"
        )
        spans: list[tuple[int, int]] = []
        outputs: list[dict[str, torch.Tensor]] = []
        for batch in _batched(stream, max(1, batch_size // crops)):
            spans.extend((start, stop) for start, stop, _ in batch)
            outputs.append(_forward(net, torch.cat([v for _, _, v in batch]).to(dev), crops, keep, amp_dtype))
        merged = {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}
        return SnippetFeatures(
            features=merged.pop("features"),
            start_frame=[a for a, _ in spans],
            end_frame=[b for _, b in spans],
            fps=fps if math.isfinite(fps) and fps > 0 else None,
            window=window,
            stride=stride,
            num_frames=reader.num_frames,
            cls={int(k.split(".")[1]): v for k, v in merged.items() if k.startswith("cls.")},
            patches={int(k.split(".")[1]): v for k, v in merged.items() if k.startswith("patches.")},
        )


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.inference_mode()
def _forward(
    net: Any, views: torch.Tensor, crops: int, layers: list[int] | None, amp_dtype: torch.dtype | str | None
) -> dict[str, torch.Tensor]:
    """Features averaged over the crops of each snippet, tokens of the centre crop (float32, CPU)."""
    with autocast(views.device, amp_dtype):
        if layers is None:
            out = {"features": net.forward_features(views)}
        else:
            inter = net.forward_tokens(views, layers)
            out = {"features": inter["features"]}
            out.update({f"cls.{i}": t for i, t in inter["cls"].items()})
            out.update({f"patches.{i}": t for i, t in inter["patches"].items()})
    centre = crops // 2
    result = {}
    for key, value in out.items():
        per_snippet = value.float().cpu().unflatten(0, (-1, crops))
        result[key] = per_snippet.mean(dim=1) if key == "features" else per_snippet[:, centre].clone()
    return result


def snippet_features_many(videos: Sequence[VideoLike], model: Any = None, **kwargs: Any) -> Iterator[Result]:
    """:func:`snippet_features` of each video in turn, never raising for a video that cannot be read.

    Videos are streamed one after the other (each one's decoding bounded by its window). The
    keyword arguments are those of :func:`snippet_features`; ``model`` is loaded once.

    Yields:
        :class:`Result` with ``value`` a :class:`SnippetFeatures`, or ``error`` set.
    """
    net, dev = resolve_model(model, kwargs.pop("device", None))
    for index, video in enumerate(videos):
        name = describe(video, index)
        try:
            value = snippet_features(video, net, device=dev, **kwargs)
        except VideoDecodeError as exc:
            yield Result(index, name, error=exc.reason)
            continue
        yield Result(index, name, value)


def embed_snippets(videos: VideoLike | Sequence[VideoLike], model: Any = None, **kwargs: Any) -> Any:
    """Backs ``embed(..., window=, stride=)``: one :class:`SnippetFeatures`, or a list for a list of videos.

    Raises:
        VideoDecodeError: a video cannot be read.
    """
    items, single = as_video_list(videos)
    values = []
    for result in snippet_features_many(items, model, **kwargs):
        result.raise_error()
        values.append(result.value)
    return values[0] if single else values


def with_times(value: SnippetFeatures) -> dict[str, Any]:
    """The snippet table of ``value`` as plain JSON-ready lists (frames and seconds)."""
    return {
        "fps": value.fps,
        "duration": value.duration,
        "num_frames": value.num_frames,
        "num_snippets": len(value.start_frame),
        "start_frame": value.start_frame,
        "end_frame": value.end_frame,
        "start": value.start,
        "end": value.end,
    }


def feature_names(videos: Sequence[str]) -> dict[str, str]:
    """Video id of each path, the name of its feature file without ``.npy``.

    The id is the file stem, the key ActionFormer-style loaders look features up by; stems that
    occur more than once in ``videos`` get a hash of the absolute path appended (``stem-0123456789``).
    """
    stems = [Path(v).stem for v in videos]
    seen = {s: stems.count(s) for s in stems}
    return {
        v: s if seen[s] == 1 else f"{s}-{hashlib.sha1(os.path.abspath(v).encode('utf-8')).hexdigest()[:10]}"
        for v, s in zip(videos, stems, strict=True)
    }


def save_snippet_features(value: SnippetFeatures, out: Path, video_id: str) -> dict[str, Any]:
    """Write ``<id>.npy`` (num_snippets, n) float32 and the token arrays; returns the index entry.

    Tokens go to ``<id>.cls<L>.npy`` (num_snippets, T', C) and ``<id>.patches<L>.npy``
    (num_snippets, T', h, w, C). Every file is written under a temporary name and renamed.
    """
    arrays = {"features": value.features}
    arrays.update({f"cls.{i}": t for i, t in value.cls.items()})
    arrays.update({f"patches.{i}": t for i, t in value.patches.items()})
    names = {}
    for key, tensor in arrays.items():
        names[key] = f"{video_id}.npy" if key == "features" else f"{video_id}.{key.replace('.', '')}.npy"
        atomic_save_npy(tensor.numpy().astype(np.float32), out / names[key])
    entry: dict[str, Any] = {"id": video_id, "file": names.pop("features"), "dim": int(value.features.shape[1])}
    entry["tokens"] = names
    entry.update(window=value.window, feature_stride=value.stride, **with_times(value))
    return entry


def write_feature_index(records: Sequence[dict[str, Any]], path: Path, meta: dict[str, Any]) -> Path:
    """Write the index of a feature folder as JSON (layout in ``docs/features.md``), atomically.

    ``database`` maps each video id to its entry (the per-video keys ActionFormer's JSON uses,
    ``fps`` and ``duration``, plus the feature file and the snippet table); ``errors`` lists the
    videos that failed.
    """
    done = [r for r in records if "error" not in r]
    first = done[0] if done else {}
    index = {
        "feature_stride": first.get("feature_stride"),
        "window": first.get("window"),
        "dim": first.get("dim"),
        **meta,
        "database": {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in done},
        "errors": [{"video": r["video"], "error": r["error"]} for r in records if "error" in r],
    }
    return atomic_write_json(path, index)
