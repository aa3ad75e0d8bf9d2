"""Scan video files and report which ones can be decoded (``uniformerv2 check-videos``)."""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from uniformerv2.errors import VideoDecodeError
from uniformerv2.video.decode import open_video

__all__ = ["check_video", "check_videos"]

_FIELDS = (
    "path",
    "ok",
    "frames",
    "decodable",
    "header_frames",
    "fps",
    "width",
    "height",
    "codec",
    "duration",
    "error",
)


def check_video(path: str | os.PathLike[str], min_frames: int = 1, *, fast: bool = False) -> dict[str, Any]:
    """Decode a video as training and prediction will, and report what fails.

    The full check (default) decodes every frame (:meth:`VideoReader.verify`): it finds corrupt
    packets mid-file, files cut short whose header promises more frames, and frame folders with
    gaps in their numbering or images that do not decode. ``fast`` only opens the video, counts
    its frames from the container and decodes the first and last frame.

    Args:
        path: video file or frame folder.
        min_frames: fewer decodable frames than this marks the video as bad.
        fast: header check only.

    Returns:
        ``{"path", "ok", "frames", "decodable", "header_frames", "fps", "width", "height", "codec",
        "duration", "error"}``: ``frames`` is the count sampling uses, ``decodable`` the frames that
        decoded (full check), ``header_frames`` the count the header or the numbering of a frame
        folder promises (full check; None when it says nothing). Unknown values are None and
        ``error`` is None for a good video.
    """
    row: dict[str, Any] = dict.fromkeys(_FIELDS)
    row.update(path=os.fspath(path), ok=False)
    try:
        with open_video(path) as reader:
            row.update(frames=reader.num_frames, codec=reader.codec, width=reader.width, height=reader.height)
            row.update(fps=reader.fps, duration=reader.duration)
            if fast:
                reader.get_frames([0, reader.num_frames - 1])
                problems = []
            else:
                result = reader.verify()
                row.update(decodable=result.decodable, header_frames=result.expected)
                problems = result.problems
                if not problems and result.decodable < reader.num_frames:
                    problems = [f"only {result.decodable} of {reader.num_frames} frames decode"]
    except VideoDecodeError as exc:
        row["error"] = exc.reason
        return row
    count = row["frames"] if fast else row["decodable"]
    if not problems and count < min_frames:
        problems = [f"too short: {count} frames < {min_frames}"]
    row["error"] = "; ".join(problems) or None
    row["ok"] = not problems
    return row


def check_videos(
    paths: Iterable[str | os.PathLike[str]],
    min_frames: int = 1,
    progress: bool = False,
    *,
    fast: bool = False,
    workers: int = 0,
) -> list[dict[str, Any]]:
    """:func:`check_video` for every path, in order.

    Args:
        paths: video files or frame folders.
        min_frames: see :func:`check_video`.
        progress: show a tqdm progress bar on stderr.
        fast: header check only (see :func:`check_video`).
        workers: processes that check videos in parallel; 0 checks them in this process.

    Returns:
        One result dict per path, in the order of ``paths``.
    """
    paths = [os.fspath(p) for p in paths]
    check = functools.partial(check_video, min_frames=min_frames, fast=fast)
    bar = functools.partial(tqdm, total=len(paths), desc="check-videos", unit="video", disable=not progress)
    if workers < 1 or len(paths) < 2:
        return [check(p) for p in bar(paths)]
    with multiprocessing.get_context("spawn").Pool(min(workers, len(paths))) as pool:
        return list(bar(pool.imap(check, paths)))
