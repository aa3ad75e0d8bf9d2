"""Shared machinery of the inference helpers: model and device resolution, a DataLoader that
decodes and builds test views off the main thread, and a runner that pushes views through the
model in bounded chunks.

Terms: a *view* is one (3, T, S, S) clip-and-crop of a video (official multi-view test, §3.4);
a video with K clips and S crops has V = K * S views, clip-major.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from uniformerv2.errors import VideoDecodeError
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.runtime import autocast, resolve_device
from uniformerv2.video import extract_views, open_video
from uniformerv2.video.decode import ArrayReader, VideoReader

__all__ = [
    "VideoLike",
    "Result",
    "resolve_model",
    "model_labels",
    "view_config",
    "parse_views",
    "as_video_list",
    "open_source",
    "run_views",
    "top_classes",
]

_logger = logging.getLogger(__name__)

#: A video: a file path, a frame folder, or decoded (T, H, W, 3) uint8 RGB frames.
VideoLike = Union[str, "os.PathLike[str]", np.ndarray, torch.Tensor]

#: Per-view model outputs, each (V, ...) for the V views of one video.
ViewOutputs = dict[str, torch.Tensor]


@dataclass
class Result:
    """Outcome for one video of a streamed batch job.

    Attributes:
        index: position of the video in the input list.
        video: the path, or ``<array i>`` for in-memory frames.
        value: the result (its type depends on the helper) or None when the video failed.
        error: why the video failed (one line, without the path), or None.
    """

    index: int
    video: str
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_error(self) -> None:
        """Raise :class:`VideoDecodeError` for a failed video; nothing for a good one."""
        if self.error is not None:
            raise VideoDecodeError(self.video, self.error)


def resolve_model(model: Any, device: str | torch.device | None = None) -> tuple[Any, torch.device]:
    """An eval-mode model and the device it runs on.

    Args:
        model: a loaded model, or anything :func:`uniformerv2.load_model` accepts (zoo name,
            checkpoint path, model directory, Hub id) or an exported ``.onnx`` file (run by
            onnxruntime, see :class:`uniformerv2.export.OnnxModel`); None means ``uniformerv2.zoo.DEFAULT_MODEL``.
        device: where to run (a given model is moved there in place); None keeps a given model
            where it is and puts a loaded one on :func:`resolve_device`'s choice.

    Returns:
        (model, device).
    """
    if model is None or isinstance(model, (str, os.PathLike)):
        from uniformerv2.api import load_model
        from uniformerv2.zoo import DEFAULT_MODEL

        if model is not None and os.fspath(model).endswith(".onnx"):  # an export runs with onnxruntime on the CPU
            from uniformerv2.export import load_onnx

            return load_onnx(model), torch.device("cpu")
        target = resolve_device(device)
        return load_model(DEFAULT_MODEL if model is None else model, device=target), target
    if device is None:
        target = getattr(model, "device", None) or next(model.parameters()).device  # .device: an OnnxModel
    else:
        target = resolve_device(device)
        model = model.to(target)
    return model.eval(), target


def model_labels(model: Any) -> list[str]:
    """Class names in head order (``pretrained_cfg["labels"]``, else ``LABEL_i``)."""
    labels = getattr(model, "pretrained_cfg", {}).get("labels")
    return list(labels) if labels else [f"LABEL_{i}" for i in range(model.config.num_classes)]


def view_config(model: torch.nn.Module, views: tuple[int, int] | str | None = None) -> PreprocessConfig:
    """The checkpoint's :class:`PreprocessConfig` with the test views optionally overridden.

    Args:
        model: a model whose ``pretrained_cfg["preprocess"]`` describes its input (the
            defaults of :class:`PreprocessConfig` when absent).
        views: (clips, crops) or ``"KxS"``; the checkpoint's own views when None.
    """
    cfg = getattr(model, "pretrained_cfg", {}).get("preprocess") or PreprocessConfig()
    if views is None:
        return cfg
    clips, crops = parse_views(views) if isinstance(views, str) else views
    return dataclasses.replace(cfg, num_clips=int(clips), num_crops=int(crops))


def parse_views(text: str) -> tuple[int, int]:
    """``"4x3"`` -> (4, 3): temporal clips x spatial crops (crops must be 1 or 3)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not match or int(match[1]) < 1 or int(match[2]) not in (1, 3):
        raise ValueError(f"views must look like CLIPSxCROPS with crops 1 or 3 (e.g. 4x3, 1x1), got {text!r}")
    return int(match[1]), int(match[2])


def _is_single(videos: Any) -> bool:
    if isinstance(videos, (str, os.PathLike)):
        return True
    return isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 4


def as_video_list(videos: Any) -> tuple[list[VideoLike], bool]:
    """Normalise the ``videos`` argument of the helpers.

    Returns:
        (list of videos, whether a single video was given).
    """
    if _is_single(videos):
        return [videos], True
    return list(videos), False


def describe(video: VideoLike, index: int) -> str:
    """How results and errors name a video: its path, or ``<array i>``."""
    return f"<array {index}>" if isinstance(video, (np.ndarray, torch.Tensor)) else os.fspath(video)


def open_source(video: VideoLike, index: int, decode_short_side: int | None = None) -> VideoReader:
    """A reader for a path (PyAV or frame folder) or for in-memory frames.

    ``decode_short_side`` limits the short side of frames decoded from video files (see
    :func:`uniformerv2.video.open_video`'s ``max_short_side``); None decodes at full resolution.
    """
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return ArrayReader(video, name=describe(video, index))
    return open_video(video, max_short_side=decode_short_side)


class ViewDataset(Dataset):
    """Decodes video ``i`` and builds its test views; failures come back as a message.

    Item ``i`` is ``(i, views, error)`` with views (V, 3, T, S, S) float32 or None, and error a
    one-line reason or None, so that one broken file never stops a DataLoader.

    Args:
        videos: paths or frame arrays.
        cfg: sampling, crop size, normalisation and views.
        decode_short_side: see :func:`open_source`.
    """

    def __init__(
        self, videos: Sequence[VideoLike], cfg: PreprocessConfig, decode_short_side: int | None = None
    ) -> None:
        self.videos = videos
        self.cfg = cfg
        self.decode_short_side = decode_short_side

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            with open_source(self.videos[index], index, self.decode_short_side) as reader:
                return index, extract_views(reader, self.cfg), None
        except VideoDecodeError as exc:
            return index, None, exc.reason
        except Exception as exc:  # a decoder failure that is not wrapped yet; report, never stop the batch
            text = str(exc).splitlines()[0] if str(exc) else ""
            return index, None, f"{type(exc).__name__}: {text}".rstrip(": ")


def _unbatched(item: Any) -> Any:
    return item


def _check_arrays(videos: Sequence[VideoLike]) -> None:
    for index, video in enumerate(videos):
        if isinstance(video, (np.ndarray, torch.Tensor)):
            tensor = torch.as_tensor(video)
            if tensor.dtype != torch.uint8 or tensor.ndim != 4 or tensor.shape[-1] != 3:
                raise ValueError(
                    f"video {index}: expected (T, H, W, 3) uint8 frames, got {tuple(tensor.shape)} {tensor.dtype}"
                )


def run_views(
    videos: Sequence[VideoLike],
    cfg: PreprocessConfig,
    forward: Callable[[torch.Tensor], ViewOutputs],
    *,
    device: torch.device,
    batch_size: int = 12,
    num_workers: int = 0,
    amp_dtype: torch.dtype | str | None = None,
    decode_short_side: int | None = None,
) -> Iterator[Result]:
    """Decode every video, run all its views through ``forward`` and yield per-video outputs.

    Views of consecutive videos are pooled and fed to ``forward`` in chunks of at most
    ``batch_size`` views, so memory stays bounded however many views a video has, and short
    videos still fill a batch. Decoding runs in ``num_workers`` DataLoader worker processes
    (0: in this process) and overlaps with the model.

    Args:
        videos: paths or (T, H, W, 3) uint8 frame arrays.
        cfg: preprocessing and views.
        forward: (v, 3, T, S, S) on ``device`` -> dict of (v, ...) tensors.
        device: where the views go.
        batch_size: most views per forward pass.
        num_workers: DataLoader worker processes.
        amp_dtype: autocast dtype, or None for the model's own precision.
        decode_short_side: see :func:`open_source`.

    Yields:
        :class:`Result` whose ``value`` is a dict of (V, ...) float tensors on the CPU, in the
        order videos complete (failures may overtake earlier videos still in the pool).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_arrays(videos)
    dataset = ViewDataset(videos, cfg, decode_short_side)
    pool: list[tuple[int, torch.Tensor]] = []
    pooled = 0
    for index, views, error in _decoded(dataset, num_workers, pin_memory=device.type == "cuda"):
        if error is not None or views is None:
            yield Result(index, describe(videos[index], index), error=error or "no frames decoded")
            continue
        pool.append((index, views))
        pooled += len(views)
        if pooled >= batch_size:
            yield from _flush(pool, videos, forward, device, batch_size, amp_dtype)
            pool, pooled = [], 0
    yield from _flush(pool, videos, forward, device, batch_size, amp_dtype)


def _decoded(
    dataset: ViewDataset, num_workers: int, pin_memory: bool
) -> Iterator[tuple[int, torch.Tensor | None, str | None]]:
    """The items of ``dataset`` in order, decoded by ``num_workers`` DataLoader processes.

    A worker that dies (a decoder crash, the out-of-memory killer) fails only the video it was
    decoding: the videos not yet received are decoded again, one at a time by a single worker from
    then on, so that a further crash names its video exactly.
    """
    remaining = list(range(len(dataset)))
    isolate = False
    while remaining:
        loader = DataLoader(
            Subset(dataset, remaining),
            batch_size=None,
            num_workers=1 if isolate else num_workers,
            prefetch_factor=1 if isolate else None,
            collate_fn=_unbatched,
            pin_memory=pin_memory,
        )
        received = 0
        try:
            for item in loader:
                received += 1
                yield item
            return
        except RuntimeError as exc:
            if num_workers == 0 or "DataLoader worker" not in str(exc):
                raise
            remaining = remaining[received:]
            if isolate:  # the one video in flight killed its worker
                reason = str(exc).splitlines()[0]
                yield remaining[0], None, f"the decoding process died while reading this file ({reason})"
                remaining = remaining[1:]
            isolate = True


@torch.inference_mode()
def _flush(
    pool: list[tuple[int, torch.Tensor]],
    videos: Sequence[VideoLike],
    forward: Callable[[torch.Tensor], ViewOutputs],
    device: torch.device,
    batch_size: int,
    amp_dtype: torch.dtype | str | None,
) -> Iterator[Result]:
    """Run the pooled views in chunks and split the outputs back per video."""
    if not pool:
        return
    views = torch.cat([v for _, v in pool])
    chunks: list[ViewOutputs] = []
    for start in range(0, len(views), batch_size):
        x = views[start : start + batch_size].to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            out = forward(x)
        chunks.append({k: v.float().cpu() for k, v in out.items()})
    merged = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    offset = 0
    for index, video_views in pool:
        n = len(video_views)
        yield Result(index, describe(videos[index], index), {k: v[offset : offset + n] for k, v in merged.items()})
        offset += n


def top_classes(probs: torch.Tensor, labels: Sequence[str], k: int | None) -> list[dict[str, Any]]:
    """``[{"label", "score"}]`` of the ``k`` best classes (all when None), best first.

    Args:
        probs: (num_classes,) scores.
        labels: class names in head order.
        k: how many; capped at the number of classes.
    """
    k = len(probs) if k is None else min(int(k), len(probs))
    scores, indices = probs.topk(k)
    return [{"label": labels[i], "score": float(s)} for s, i in zip(scores.tolist(), indices.tolist(), strict=False)]
