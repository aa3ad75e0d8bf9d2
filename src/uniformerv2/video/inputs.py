"""Turn command-line inputs (video files, frame folders, directories, list files) into videos.

One rule set for ``predict``, ``embed``, ``timeline``, ``check-videos`` and the Python API:

* a directory that holds frame images (``img_00001.jpg`` ...) is one video (a frame folder);
* another directory contributes, recursively and sorted, its video files (by suffix) and the
  frame folders below it;
* a list file (``.txt``, ``.csv``, ``.lst``, ``.list``) contributes the videos it names, path
  first on each line (official ``path label``, ``folder num_frames label`` or ``path,label``);
  relative entries are relative to ``root`` when given, otherwise to the list's own folder;
* anything else is a video path as given (a missing video is reported later, per video).

Inputs that name no video at all (an empty list or directory, a list that is not text) raise
:class:`~uniformerv2.errors.InputError` naming the file, before any work starts.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from uniformerv2.errors import InputError
from uniformerv2.video._frames import FRAME_IMAGE_RE

__all__ = [
    "VIDEO_EXTENSIONS",
    "LIST_EXTENSIONS",
    "collect_videos",
    "read_video_list",
    "read_list_text",
    "is_frame_folder",
]

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
    ".m2ts",
    ".mts",
    ".gif",
    ".h264",
    ".264",
    ".h265",
    ".hevc",
)
#: Suffixes of list files: one video per line, path first.
LIST_EXTENSIONS = (".txt", ".csv", ".lst", ".list")
_HEADER_NAMES = {"path", "video", "file", "filename", "video_path", "name", "frame_dir"}
_TRAILING_NUMBER = re.compile(r"^(?P<rest>.*?\S)(?:\s+|\s*,\s*)[-+]?\d+$")


def read_list_text(path: str | os.PathLike[str]) -> str:
    """The text of a list file (UTF-8, with or without a byte order mark).

    Raises:
        InputError: the file is missing, unreadable, binary or not UTF-8.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "list file does not exist") from None
    except OSError as exc:
        raise InputError(path, f"cannot read list file: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise InputError(path, "not a text list (binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def _txt_entry(line: str, base: Path) -> str:
    """The path of a text list line: the whole line when it exists, otherwise the line without its
    trailing integer fields (label, frame count), or the part before a comma."""
    candidates = [line]
    while match := _TRAILING_NUMBER.match(candidates[-1]):
        candidates.append(match["rest"])
    for candidate in candidates:
        if (base / candidate).exists():
            return candidate
    if len(candidates) > 1 or Path(line).suffix.lower() in VIDEO_EXTENSIONS:
        return candidates[-1]
    return line.split(",")[0].strip() if "," in line else line.split()[0]


def read_video_list(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[str]:
    """Videos named in a list file, path first on each line.

    ``.csv``: the first column of each row; a first row whose first cell is a column name
    (``path``, ``video``, ``file``, ...) is skipped. Other suffixes: one video per line, as
    ``path``, ``path label``, ``folder num_frames label`` or ``path,label`` (paths may hold
    spaces). Blank lines and lines starting with ``#`` are skipped.

    Args:
        path: the list file.
        root: folder that relative entries are relative to; the list's own folder when None.

    Raises:
        InputError: the list is missing, not UTF-8 text, or names no video.
    """
    base = Path(path).parent if root is None else Path(root)
    text = read_list_text(path)
    if Path(path).suffix.lower() == ".csv":
        rows = [row for row in csv.reader(text.splitlines()) if row and row[0].strip()]
        rows = [row for row in rows if not row[0].lstrip().startswith("#")]
        if rows and rows[0][0].strip().lower() in _HEADER_NAMES:
            rows = rows[1:]
        names = [row[0].strip() for row in rows]
    else:
        lines = [line.strip() for line in text.splitlines()]
        names = [_txt_entry(line, base) for line in lines if line and not line.startswith("#")]
    if not names:
        raise InputError(path, "the list names no videos")
    return [name if os.path.isabs(name) else str(base / name) for name in names]


def is_frame_folder(folder: str | os.PathLike[str], suffixes: Iterable[str] = VIDEO_EXTENSIONS) -> bool:
    """True when ``folder`` directly holds frame images (``<prefix><number>.jpg|png|...``) and no
    video files."""
    wanted = {s.lower() for s in suffixes}
    images = False
    with os.scandir(folder) as entries:
        for entry in entries:
            if Path(entry.name).suffix.lower() in wanted:
                return False
            images = images or bool(FRAME_IMAGE_RE.match(entry.name))
    return images


def _videos_below(folder: Path, suffixes: set[str]) -> list[str]:
    """Video files and frame folders under ``folder``, sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        here = Path(dirpath)
        if here != folder and is_frame_folder(here, suffixes):
            found.append(str(here))
        found.extend(str(here / name) for name in filenames if Path(name).suffix.lower() in suffixes)
    return sorted(found)


def collect_videos(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    root: str | os.PathLike[str] | None = None,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> list[str]:
    """Expand inputs into videos (files or frame folders), keeping their order.

    Args:
        inputs: video files, frame folders, directories and list files.
        root: folder that relative list entries are relative to; each list's own folder when None.
        extensions: suffixes of the video files a directory search picks up.

    Returns:
        Video paths; frame folders are directories.

    Raises:
        InputError: no inputs, an empty name, a directory without videos, or a list that is
            missing, not text or empty.
    """
    suffixes = {e.lower() for e in extensions}
    videos: list[str] = []
    for item in inputs:
        if not os.fspath(item).strip():
            raise InputError(repr(os.fspath(item)), "an empty name is not a video, directory or list")
        path = Path(item)
        if path.is_dir():
            found = [str(path)] if is_frame_folder(path, suffixes) else _videos_below(path, suffixes)
            if not found:
                raise InputError(path, "no video files or frame folders in this directory")
            videos.extend(found)
        elif path.suffix.lower() in LIST_EXTENSIONS:
            videos.extend(read_video_list(path, root))
        else:
            videos.append(os.fspath(item))
    if not videos:
        raise InputError("<inputs>", "no videos given")
    return videos
