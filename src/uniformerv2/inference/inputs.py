"""Turn command-line style inputs (files, directories, list files) into a list of videos."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["VIDEO_EXTENSIONS", "LIST_EXTENSIONS", "collect_videos", "read_video_list"]

#: File suffixes treated as videos when a directory is searched.
VIDEO_EXTENSIONS = (
    ".mp4",
    ".m4v",
    ".mov",
    ".avi",
    ".mkv",
    ".webm",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".3gp",
    ".ogv",
    ".ts",
    ".gif",
)
#: Suffixes of list files: one video per line (.txt) or per row, path in the first column (.csv).
LIST_EXTENSIONS = (".txt", ".csv")
_HEADER_NAMES = {"path", "video", "file", "filename", "video_path", "name"}


def read_video_list(path: str | os.PathLike[str]) -> list[str]:
    """Videos named in a list file; relative paths are relative to the list file's folder.

    ``.csv``: the first column of each row; a first row whose first cell is a column name
    (``path``, ``video``, ``file``, ``filename``, ``video_path``, ``name``) is skipped.
    ``.txt``: one video per line; when the whole line is not an existing file, its first
    whitespace-separated field is used (so ``video.mp4 label`` annotation lists work). Blank
    lines and lines starting with ``#`` are skipped.
    """
    path = Path(path)
    base = path.parent
    with open(path, encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            rows = [row for row in csv.reader(handle) if row and row[0].strip()]
            if rows and rows[0][0].strip().lower() in _HEADER_NAMES:
                rows = rows[1:]
            names = [row[0].strip() for row in rows]
        else:
            lines = [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
            names = [line if (base / line).is_file() else line.split()[0] for line in lines]
    return [str(base / name) if not os.path.isabs(name) else name for name in names]


def collect_videos(inputs: Sequence[str | os.PathLike[str]], extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[str]:
    """Expand inputs into video paths, keeping their order.

    A directory contributes its video files (by suffix, recursively, sorted); a ``.txt`` or
    ``.csv`` file contributes the videos it lists (:func:`read_video_list`); anything else is
    taken as a video path as is (a missing file is reported later, per video).

    Raises:
        ValueError: a directory holds no video files.
    """
    wanted = {e.lower() for e in extensions}
    videos: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
            if not found:
                raise ValueError(f"{path}: no video files in this directory (looked for {', '.join(sorted(wanted))})")
            videos.extend(str(p) for p in found)
        elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            videos.extend(read_video_list(path))
        else:
            videos.append(os.fspath(item))
    return videos
