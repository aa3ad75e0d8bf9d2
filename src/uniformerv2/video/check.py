"""Scan video files and report which ones can be decoded (``uniformerv2 check-videos``)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from uniformerv2.errors import VideoDecodeError
from uniformerv2.video.decode import open_video

__all__ = ["check_video", "check_videos", "read_path_list", "expand_inputs"]

_logger = logging.getLogger(__name__)
_VIDEO_SUFFIXES = {".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv"}
_LIST_SUFFIXES = {".csv", ".txt", ".lst", ".list"}


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


def read_path_list(list_file: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[str]:
    """Video paths from an annotation list: the first field of each non-empty line.

    Lines look like the official ``path,label`` (Kinetics CSV) or ``path label`` /
    ``folder num_frames label`` (space separated). A line with a comma is split on commas,
    otherwise on whitespace. Relative paths are joined to ``root`` when given.
    """
    out = []
    for line in Path(list_file).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first = line.split(",")[0].strip() if "," in line else re.split(r"\s+", line)[0]
        out.append(os.path.join(root, first) if root is not None else first)
    return out


def expand_inputs(inputs: Iterable[str], root: str | None = None) -> list[str]:
    """Turn command-line inputs into video paths.

    A list file (.csv/.txt/...) gives its first column; a folder of frame images is one video;
    another folder gives the video files it contains (recursively); anything else is a path.
    """
    paths: list[str] = []
    for item in inputs:
        if os.path.isfile(item) and Path(item).suffix.lower() in _LIST_SUFFIXES:
            paths.extend(read_path_list(item, root))
        elif os.path.isdir(item) and _has_videos(item):
            paths.extend(sorted(str(p) for p in Path(item).rglob("*") if p.suffix.lower() in _VIDEO_SUFFIXES))
        else:
            paths.append(item)
    return paths


def _has_videos(folder: str) -> bool:
    return any(p.suffix.lower() in _VIDEO_SUFFIXES for p in Path(folder).rglob("*"))
