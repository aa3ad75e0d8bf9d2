"""Frame folders (one image per frame, SSv1/SSv2 style) and in-memory frame arrays."""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from uniformerv2.errors import VideoDecodeError
from uniformerv2.video._reader import Verification, VideoReader

__all__ = ["FrameFolderReader", "ArrayReader"]

FRAME_IMAGE_RE = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)(?P<suffix>\.(?:jpe?g|png|bmp|webp))$", re.IGNORECASE)


def _find_frame_files(folder: str, template: str | None) -> list[str]:
    """Frame file names of ``folder`` in frame order.

    With a template (e.g. ``"img_{:05d}.jpg"``) files are numbered from 1 (SSv1/SSv2) and listed
    until the first missing number. Without one, the largest group of names ``<prefix><number>
    <image suffix>`` sharing prefix and suffix is used, sorted by number.
    """
    if template is not None:
        names: list[str] = []
        while os.path.isfile(os.path.join(folder, template.format(len(names) + 1))):
            names.append(template.format(len(names) + 1))
        return names
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for name in os.listdir(folder):
        match = FRAME_IMAGE_RE.match(name)
        if match:
            groups.setdefault((match["prefix"], match["suffix"]), []).append((int(match["num"]), name))
    if not groups:
        return []
    best = max(groups.values(), key=len)
    return [name for _, name in sorted(best)]


def _read_image(path: str) -> torch.Tensor:
    """(H, W, 3) uint8 RGB image, with Pillow when installed, otherwise FFmpeg."""
    try:
        if importlib.util.find_spec("PIL") is not None:
            from PIL import Image

            with Image.open(path) as img:
                return torch.from_numpy(np.asarray(img.convert("RGB")).copy())
        import av

        with av.open(path) as container:
            frame = next(container.decode(video=0))
            return torch.from_numpy(frame.to_ndarray(format="rgb24"))
    except Exception as exc:  # any decoder error on a damaged image file
        reason = str(exc).replace(repr(path), "").replace(path, "").strip(" :")
        raise VideoDecodeError(path, f"cannot decode frame image: {reason or type(exc).__name__}") from exc


def _numbered_like(folder: str, example: str) -> dict[int, str]:
    """Number -> name of every image in ``folder`` named like ``example`` (same prefix and suffix)."""
    pattern = FRAME_IMAGE_RE.match(example)
    assert pattern is not None  # the reader only lists names that match
    out = {}
    for name in os.listdir(folder):
        match = FRAME_IMAGE_RE.match(name)
        if match and (match["prefix"], match["suffix"]) == (pattern["prefix"], pattern["suffix"]):
            out[int(match["num"])] = name
    return out


class FrameFolderReader(VideoReader):
    """A folder of frame images (SSv1/SSv2 style), frame i is the (i+1)-th file.

    Args:
        folder: directory holding the frames.
        template: file name template numbered from 1, e.g. ``"img_{:05d}.jpg"`` (SSv2) or
            ``"{:05d}.jpg"`` (SSv1); detected from the names when None.
        fps: frame rate to report (the folder does not store one); NaN when None.
    """

    def __init__(
        self, folder: str | os.PathLike[str], *, template: str | None = None, fps: float | None = None
    ) -> None:
        self.path = os.fspath(folder)
        if not os.path.isdir(self.path):
            raise VideoDecodeError(self.path, "is not a directory")
        self.files = _find_frame_files(self.path, template)
        if not self.files:
            raise VideoDecodeError(self.path, "directory contains no frame images (expected names like img_00001.jpg)")
        self._fps = math.nan if fps is None else float(fps)
        self._size: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.files)

    @property
    def fps(self) -> float:
        return self._fps

    def _first_size(self) -> tuple[int, int]:
        if self._size is None:
            first = _read_image(os.path.join(self.path, self.files[0]))
            self._size = (first.shape[0], first.shape[1])
        return self._size

    @property
    def height(self) -> int:
        return self._first_size()[0]

    @property
    def width(self) -> int:
        return self._first_size()[1]

    @property
    def codec(self) -> str:
        return "frames:" + Path(self.files[0]).suffix.lstrip(".").lower()

    def _decode(self, wanted: list[int]) -> dict[int, torch.Tensor]:
        return {i: self._read(self.files[i]) for i in wanted}

    def _read(self, name: str) -> torch.Tensor:
        """One frame image, which must have the size of the first frame."""
        path = os.path.join(self.path, name)
        image = _read_image(path)
        height, width = self._first_size()
        if image.shape[:2] != (height, width):
            size = f"{image.shape[1]}x{image.shape[0]}"
            raise VideoDecodeError(path, f"frame image is {size}, the first frame is {width}x{height}")
        return image

    def verify(self) -> Verification:
        """Decode every frame image of the folder's numbering and report gaps in the numbers,
        images that do not decode and images of another size than the first."""
        numbered = _numbered_like(self.path, self.files[0])
        first, last = min(numbered), max(numbered)
        missing = [n for n in range(first, last + 1) if n not in numbered]
        problems = []
        if missing:
            match = FRAME_IMAGE_RE.match(self.files[0])
            assert match is not None  # the reader only lists names that match
            name = f"{match['prefix']}{missing[0]:0{len(match['num'])}d}{match['suffix']}"
            problems.append(f"{len(missing)} frame files missing from the numbering {first}..{last} (first: {name})")
        bad: list[str] = []
        for number in sorted(numbered):
            try:
                self._read(numbered[number])
            except VideoDecodeError as exc:
                bad.append(f"{numbered[number]}: {exc.reason}")
        if bad:
            problems.append(f"{len(bad)} frame images do not decode (first: {bad[0]})")
        return Verification(len(numbered) - len(bad), last - first + 1, problems)

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        for index in range(start, self.num_frames if stop is None else min(stop, self.num_frames)):
            yield self._decode([index])[index]


class ArrayReader(VideoReader):
    """Frames already in memory.

    Args:
        frames: (T, H, W, 3) uint8 RGB numpy array or tensor.
        fps: frame rate to report; NaN when None.
        name: what error messages call this source.
    """

    def __init__(self, frames: np.ndarray | torch.Tensor, *, fps: float | None = None, name: str = "<array>") -> None:
        tensor = torch.as_tensor(frames)
        if tensor.dtype != torch.uint8 or tensor.ndim != 4 or tensor.shape[-1] != 3:
            raise ValueError(f"expected a (T, H, W, 3) uint8 array, got {tuple(tensor.shape)} {tensor.dtype}")
        if tensor.shape[0] == 0:
            raise VideoDecodeError(name, "the array holds no frames")
        self.path = name
        self.frames = tensor.cpu()
        self._fps = math.nan if fps is None else float(fps)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def codec(self) -> str:
        return "array"

    def _decode(self, wanted: list[int]) -> dict[int, torch.Tensor]:
        return {i: self.frames[i] for i in wanted}

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        yield from self.frames[start:stop]
