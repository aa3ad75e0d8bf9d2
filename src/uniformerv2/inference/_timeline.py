"""Sliding-window classification of long videos, decoded as a stream with bounded memory.

A window spans ``window`` consecutive frames of the video and feeds the model T frames
(T = the checkpoint's ``num_frames``): frame i of a window starting at frame s is
s + floor((i + 1/2) * window / T), the centre of the i-th of T equal segments, so with
``window = T`` the model sees T consecutive frames. Window starts are ``stride`` frames apart;
the last window ends at or before the last frame (a video shorter than one window gives one
window over the whole video).

Frames are read once, in order, with :meth:`VideoReader.iter_frames`. Each frame that a window
needs is normalised and resized on arrival and kept only until the last window using it is
complete, so memory depends on the window, not on the video length.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from uniformerv2.atomic import atomic_savefig
from uniformerv2.errors import VideoDecodeError
from uniformerv2.inference.engine import (
    VideoLike,
    model_labels,
    open_source,
    resolve_model,
    top_classes,
    view_config,
)
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.runtime import autocast
from uniformerv2.video.transforms import crop_views

__all__ = ["timeline", "plot_timeline", "window_indices"]

_logger = logging.getLogger(__name__)

Row = dict[str, Any]


def window_indices(start: int, window: int, num_frames: int) -> list[int]:
    """Frames fed to the model for the window ``[start, start + window)``.

    Args:
        start: first frame of the window.
        window: frames the window spans.
        num_frames: frames given to the model (T).

    Returns:
        T non-decreasing frame indices, the centres of T equal segments of the window.
    """
    return [start + int((i + 0.5) * window / num_frames) for i in range(num_frames)]


def _frames_to_windows(num_frames: int, window: int, stride: int) -> list[int]:
    """Window starts for a video of ``num_frames`` frames."""
    if num_frames <= window:
        return [0]
    return list(range(0, num_frames - window + 1, stride))


def _resolve_lengths(
    fps: float,
    cfg: PreprocessConfig,
    window: int | None,
    stride: int | None,
    window_seconds: float | None,
    stride_seconds: float | None,
) -> tuple[int, int]:
    """(window, stride) in frames from frame counts or seconds."""
    if (window_seconds is not None or stride_seconds is not None) and not math.isfinite(fps):
        raise ValueError("the video has no frame rate: give the window and stride in frames, or the frame rate")
    if window is None:
        window = round(window_seconds * fps) if window_seconds is not None else cfg.num_frames
    if stride is None:
        stride = round(stride_seconds * fps) if stride_seconds is not None else max(1, window // 2)
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be at least one frame, got {window} and {stride}")
    return int(window), int(stride)


def _stream_windows(
    reader: Any, starts: list[int], window: int, cfg: PreprocessConfig, crops: int
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (start, stop, views) per window, decoding each frame once and in order.

    Views are (crops, 3, T, S, S). Frames are kept, already normalised, resized and cropped, only
    while a pending window still needs them.
    """
    n = reader.num_frames
    span = min(window, n)
    plans = [(s, window_indices(s, span, cfg.num_frames)) for s in starts]
    needed = {i for _, idx in plans for i in idx}
    last_needed = max(needed)
    kept: dict[int, torch.Tensor] = {}
    pending = 0
    crop_ids = [1] if crops == 1 else [0, 1, 2]
    for index, frame in enumerate(reader.iter_frames(0, last_needed + 1)):
        if index in needed:
            kept[index] = crop_views(frame[None], cfg, crop_ids)  # (crops, 3, 1, S, S)
        while pending < len(plans) and plans[pending][1][-1] <= index:
            start, idx = plans[pending]
            yield start, start + span, torch.cat([kept[i] for i in idx], dim=2)
            pending += 1
            first_needed = plans[pending][1][0] if pending < len(plans) else last_needed + 1
            for old in [i for i in kept if i < first_needed]:
                del kept[old]
    if pending < len(plans):
        raise VideoDecodeError(reader.path, f"the stream ended before frame {plans[pending][1][-1]} of {n}")


def timeline(
    video: VideoLike,
    model: Any = None,
    *,
    window: int | None = None,
    stride: int | None = None,
    window_seconds: float | None = None,
    stride_seconds: float | None = None,
    crops: int = 1,
    top_k: int = 3,
    fps_override: float | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | str | None = None,
    decode_short_side: int | None = None,
    progress: bool = False,
) -> list[Row]:
    """Classify a long video window by window.

    Args:
        video: a path or (T, H, W, 3) uint8 frames.
        model: as for :func:`uniformerv2.inference.predict`.
        window: frames each window spans; default the checkpoint's ``num_frames`` (T).
        stride: frames between window starts; default half a window.
        window_seconds: the window in seconds instead of frames.
        stride_seconds: the stride in seconds instead of frames.
        crops: spatial views per window, 1 (centre) or 3; scores are averaged over them.
        top_k: classes per window.
        fps_override: frame rate to use for times instead of the container's.
        batch_size: most views per forward pass.
        device: as for :func:`uniformerv2.inference.predict`.
        amp_dtype: as for :func:`uniformerv2.inference.predict`.
        decode_short_side: as for :func:`uniformerv2.inference.predict`.
        progress: show a tqdm bar over windows.

    Returns:
        One row per window, in time order: ``{"start": s, "end": e, "start_frame": i,
        "end_frame": j, "top": [{"label", "score"}, ...]}`` with times in seconds
        (``frame / fps``; None when the frame rate is unknown) and ``end_frame`` exclusive.

    Raises:
        VideoDecodeError: the video cannot be read.
    """
    if crops not in (1, 3):
        raise ValueError(f"crops must be 1 or 3, got {crops}")
    net, dev = resolve_model(model, device)
    cfg, labels = view_config(net), model_labels(net)
    with open_source(video, 0, decode_short_side) as reader:
        fps = float(fps_override) if fps_override else reader.fps
        window, stride = _resolve_lengths(fps, cfg, window, stride, window_seconds, stride_seconds)
        starts = _frames_to_windows(reader.num_frames, window, stride)
        _logger.info("%s: %d windows of %d frames, stride %d", reader.path, len(starts), window, stride)
        stream = tqdm(
            _stream_windows(reader, starts, window, cfg, crops), total=len(starts), disable=not progress, unit="window"
        )
        return list(_score(stream, net, dev, labels, top_k, fps, max(1, batch_size // crops), amp_dtype))


def _score(
    windows: Iterator[tuple[int, int, torch.Tensor]],
    net: Any,
    device: torch.device,
    labels: Sequence[str],
    top_k: int,
    fps: float,
    per_batch: int,
    amp_dtype: torch.dtype | str | None,
) -> Iterator[Row]:
    """Run batches of ``per_batch`` windows and turn their mean softmax into rows."""
    batch: list[tuple[int, int, torch.Tensor]] = []
    for item in windows:
        batch.append(item)
        if len(batch) == per_batch:
            yield from _score_batch(batch, net, device, labels, top_k, fps, amp_dtype)
            batch = []
    yield from _score_batch(batch, net, device, labels, top_k, fps, amp_dtype)


@torch.inference_mode()
def _score_batch(
    batch: list[tuple[int, int, torch.Tensor]],
    net: Any,
    device: torch.device,
    labels: Sequence[str],
    top_k: int,
    fps: float,
    amp_dtype: torch.dtype | str | None,
) -> Iterator[Row]:
    if not batch:
        return
    views = torch.cat([v for _, _, v in batch]).to(device)
    with autocast(device, amp_dtype):
        probs = net(views).float().softmax(dim=-1).cpu()
    per_window = probs.view(len(batch), -1, probs.shape[-1]).mean(dim=1)
    known = math.isfinite(fps) and fps > 0
    for (start, stop, _), p in zip(batch, per_window, strict=False):
        yield {
            "start": start / fps if known else None,
            "end": stop / fps if known else None,
            "start_frame": start,
            "end_frame": stop,
            "top": top_classes(p, labels, top_k),
        }


def plot_timeline(
    rows: Sequence[Row], path: str | os.PathLike[str], *, max_classes: int = 8, title: str | None = None
) -> Path:
    """Draw a timeline as a heatmap: the classes scoring most overall against time.

    Each column is a window centred on its middle; a cell is the class's score there (0 when
    the class was not in that window's top-k); colours span 0 to the highest score shown. The file
    type follows the suffix (.png, .svg, .pdf, ...). The picture is written to a temporary file
    and renamed, so ``path`` is never left half-written. Needs matplotlib (``pip install uniformerv2[plot]``).

    Args:
        rows: the output of :func:`timeline`.
        path: image file to write.
        max_classes: most classes (rows of the heatmap) to show.
        title: figure title.

    Returns:
        ``path``.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plot_timeline needs matplotlib: pip install 'uniformerv2[plot]'") from exc
    if not rows:
        raise ValueError("no timeline rows to plot")
    classes, grid = _heatmap(rows, max_classes)
    seconds = rows[0]["start"] is not None
    spans = [(r["start"], r["end"]) if seconds else (r["start_frame"], r["end_frame"]) for r in rows]
    centres = [(a + b) / 2 for a, b in spans]
    half = (centres[1] - centres[0]) / 2 if len(centres) > 1 else (spans[0][1] - spans[0][0]) / 2
    fig = Figure(figsize=(max(6.0, min(16.0, 0.15 * len(rows) + 4)), 1.2 + 0.35 * len(classes)), layout="constrained")
    ax = fig.add_subplot()
    peak = max((v for line in grid for v in line), default=0.0)
    image = ax.imshow(  # colours span 0..the highest score, so low-confidence timelines stay readable
        grid,
        aspect="auto",
        interpolation="nearest",
        cmap="viridis",
        vmin=0.0,
        vmax=max(peak, 1e-6),
        extent=(centres[0] - half, centres[-1] + half, len(classes) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("time (s)" if seconds else "frame")
    ax.set_title(title or "top classes over time")
    fig.colorbar(image, ax=ax, label="score")
    return atomic_savefig(fig, Path(path))


def _heatmap(rows: Sequence[Row], max_classes: int) -> tuple[list[str], list[list[float]]]:
    """Classes ranked by summed score, and their score per window (classes x windows)."""
    totals: dict[str, float] = {}
    for row in rows:
        for item in row["top"]:
            totals[item["label"]] = totals.get(item["label"], 0.0) + item["score"]
    classes = sorted(totals, key=totals.get, reverse=True)[:max_classes]  # type: ignore[arg-type]
    scores = [{item["label"]: item["score"] for item in row["top"]} for row in rows]
    return classes, [[s.get(name, 0.0) for s in scores] for name in classes]
