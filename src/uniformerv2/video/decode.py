"""Video decoding: video files (PyAV, optionally torchcodec), frame folders and in-memory arrays.

Every reader returns frames as ``torch.uint8`` tensors of shape (T, H, W, 3) in RGB at the stored
resolution, as the official decord path does (official behaviour §3.2), and exactly the requested
0-based indices (duplicates and any order allowed).

Error policy: anything that prevents returning the requested frames raises
:class:`~uniformerv2.errors.VideoDecodeError` naming the file and the reason. A reader never
returns fewer frames than asked, nor a neighbouring frame in place of a missing one.

Readers are picklable and open their file lazily in each process, so they can be created in the
main process and used in forked or spawned DataLoader workers.

The readers live in private modules by source: ``_pyav`` (default), ``_torchcodec`` (optional)
and ``_frames`` (frame folders and arrays); this module holds the entry points and re-exports them.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch

from uniformerv2.errors import VideoDecodeError, special_file_problem
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video._frames import ArrayReader, FrameFolderReader
from uniformerv2.video._pyav import PyAVReader
from uniformerv2.video._reader import VideoReader, check_short_side
from uniformerv2.video._torchcodec import TorchCodecReader
from uniformerv2.video.sampling import sample_indices

__all__ = [
    "VideoReader",
    "PyAVReader",
    "FrameFolderReader",
    "ArrayReader",
    "TorchCodecReader",
    "open_video",
    "load_clip",
]


Backend = Literal["auto", "pyav", "torchcodec"]


def open_video(
    source: str | os.PathLike[str] | np.ndarray | torch.Tensor,
    *,
    backend: Backend = "auto",
    max_short_side: int | None = None,
    threads: int = 1,
    template: str | None = None,
    fps: float | None = None,
) -> VideoReader:
    """Open a video file, a folder of frame images or a (T, H, W, 3) uint8 array.

    Args:
        source: path (``str`` or ``Path``, any characters) or in-memory frames.
        backend: for files, "pyav" (the default for "auto") or "torchcodec" (when installed).
        max_short_side: PyAV only: downscale frames during conversion so the short side is at
            most this (see :class:`PyAVReader`).
        threads: PyAV decoder threads.
        template: frame folders: file name template numbered from 1; detected when None.
        fps: frame rate to report for folders and arrays.

    Returns:
        A :class:`VideoReader`.

    Raises:
        VideoDecodeError: the source is missing, empty, not a video, or has no video stream.
        ValueError: ``max_short_side`` is not a whole number >= 1.
    """
    check_short_side(max_short_side)
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return ArrayReader(source, fps=fps)
    path = os.fspath(source)
    problem = special_file_problem(path)
    if problem:
        raise VideoDecodeError(path, problem)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file does not exist")
    if os.path.isdir(path):
        return FrameFolderReader(path, template=template, fps=fps)
    if backend == "torchcodec":
        return TorchCodecReader(path)
    if backend not in ("auto", "pyav"):
        raise ValueError(f"backend must be 'auto', 'pyav' or 'torchcodec', got {backend!r}")
    return PyAVReader(path, max_short_side=max_short_side, threads=threads)


def load_clip(
    source: str | os.PathLike[str] | np.ndarray | torch.Tensor | VideoReader,
    cfg: PreprocessConfig,
    clip_idx: int = -1,
    *,
    num_clips: int | None = None,
    rng: Any = None,
    **open_kwargs: Any,
) -> torch.Tensor:
    """Decode the frames of one clip as the checkpoint's config samples them (§3.3).

    Args:
        source: anything :func:`open_video` accepts, or an open reader.
        cfg: preprocessing config (sampling rule and clip length).
        clip_idx: -1 for random training sampling, otherwise the temporal view.
        num_clips: temporal views K; ``cfg.num_clips`` when None.
        rng: ``random.Random`` for training sampling.
        **open_kwargs: passed to :func:`open_video`.

    Returns:
        (cfg.num_frames, H, W, 3) uint8 RGB frames.
    """
    reader = source if isinstance(source, VideoReader) else open_video(source, **open_kwargs)
    indices = sample_indices(reader.num_frames, cfg, clip_idx, rng, num_clips=num_clips, one_based=False)
    return reader.get_frames(indices)
