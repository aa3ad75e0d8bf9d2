"""Scan video files and report which ones can be decoded (``uniformerv2 check-videos``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from uniformerv2.errors import VideoDecodeError
from uniformerv2.video.decode import open_video

__all__ = ["check_video", "check_videos"]

_logger = logging.getLogger(__name__)


def check_video(path: str | os.PathLike[str], min_frames: int = 1) -> dict[str, Any]:
    """Open a video, count its frames and decode its first and last frame.

    Args:
        path: video file or frame folder.
        min_frames: fewer decodable frames than this marks the video as bad.

    Returns:
        ``{"path", "ok", "frames", "fps", "width", "height", "codec", "duration", "error"}``;
        unknown values are None and ``error`` is None for a good video.
    """
    row: dict[str, Any] = {
        "path": os.fspath(path),
        "ok": False,
        "frames": None,
        "fps": None,
        "width": None,
        "height": None,
        "codec": None,
        "duration": None,
        "error": None,
    }
    try:
        with open_video(path) as reader:
            row.update(frames=reader.num_frames, codec=reader.codec, width=reader.width, height=reader.height)
            row.update(fps=reader.fps, duration=reader.duration)
            reader.get_frames([0, reader.num_frames - 1])
    except VideoDecodeError as exc:
        row["error"] = exc.reason
        return row
    if row["frames"] < min_frames:
        row["error"] = f"too short: {row['frames']} frames < {min_frames}"
        return row
    row["ok"] = True
    return row


def check_videos(
    paths: Iterable[str | os.PathLike[str]], min_frames: int = 1, progress: bool = False
) -> list[dict[str, Any]]:
    """:func:`check_video` for every path, in order.

    Args:
        paths: video files or frame folders.
        min_frames: see :func:`check_video`.
        progress: show a tqdm progress bar on stderr.

    Returns:
        One result dict per path.
    """
    paths = list(paths)
    return [check_video(p, min_frames) for p in tqdm(paths, desc="check-videos", unit="video", disable=not progress)]
