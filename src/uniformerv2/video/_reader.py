"""The reader interface shared by every video source, and the checks done before opening a file."""

from __future__ import annotations

import abc
import numbers
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from uniformerv2.errors import VideoDecodeError, special_file_problem

__all__ = ["VideoReader", "Verification", "check_file", "check_short_side"]


@dataclass
class Verification:
    """Outcome of decoding a whole video (:meth:`VideoReader.verify`).

    Attributes:
        decodable: frames that decoded without error.
        expected: frames the source promises (container header, or the numbering of a frame
            folder); None when it does not say.
        problems: one short sentence per problem found; empty for a sound video.
    """

    decodable: int
    expected: int | None
    problems: list[str] = field(default_factory=list)


class VideoReader(abc.ABC):
    """Random access to the frames of one video.

    Attributes:
        path: the file, folder or a description of the array, for error messages.
    """

    path: str

    @property
    @abc.abstractmethod
    def num_frames(self) -> int:
        """Number of decodable frames."""

    @property
    @abc.abstractmethod
    def fps(self) -> float:
        """Average frame rate (frames per second); NaN when unknown."""

    @property
    @abc.abstractmethod
    def height(self) -> int:
        """Height of the returned frames (after rotation and any downscaling)."""

    @property
    @abc.abstractmethod
    def width(self) -> int:
        """Width of the returned frames (after rotation and any downscaling)."""

    @property
    def complete(self) -> bool:
        """False when the file was cut short: fewer frames decode than its header announces."""
        return True

    @property
    def duration(self) -> float:
        """Length in seconds: ``num_frames / fps``."""
        return self.num_frames / self.fps

    @property
    def codec(self) -> str:
        """Name of the video codec, or a short description of the source."""
        return type(self).__name__

    @abc.abstractmethod
    def _decode(self, wanted: list[int]) -> dict[int, torch.Tensor]:
        """Decode sorted unique in-range indices into a map index -> (H, W, 3) uint8 tensor."""

    @abc.abstractmethod
    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        """Stream frames ``start <= i < stop`` one at a time, in order, with bounded memory.

        Args:
            start: first frame index.
            stop: one past the last frame index; the end of the video when None.

        Yields:
            (H, W, 3) uint8 RGB frames.
        """

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Decode exactly the requested frames.

        Args:
            indices: 0-based frame indices, in any order, duplicates allowed.

        Returns:
            (len(indices), H, W, 3) uint8 RGB tensor; row j is frame ``indices[j]``.

        Raises:
            VideoDecodeError: an index is out of range or a frame cannot be decoded.
        """
        idx = [int(i) for i in indices]
        n = self.num_frames
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise VideoDecodeError(self.path, f"frame index {bad[0]} is out of range: the video has {n} frames")
        if not idx:
            return torch.empty((0, self.height, self.width, 3), dtype=torch.uint8)
        frames = self._decode(sorted(set(idx)))
        return torch.stack([frames[i] for i in idx])

    def verify(self) -> Verification:
        """Decode every frame once, in order, and report what could not be decoded.

        Unlike :meth:`get_frames` this does not stop at the first damaged frame, so the report
        counts every frame that training or prediction could read.
        """
        decodable, problems = 0, []
        try:
            for _ in self.iter_frames():
                decodable += 1
        except VideoDecodeError as exc:
            problems.append(f"decoding stopped at frame {decodable}: {exc.reason}")
        return Verification(decodable, self.num_frames, problems)

    def __len__(self) -> int:
        return self.num_frames

    def close(self) -> None:  # noqa: B027 (optional hook: readers without an open file need nothing)
        """Release the open file, if any; the reader reopens it on next use."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


def check_file(path: str) -> None:
    """Raise :class:`VideoDecodeError` when ``path`` is missing, a directory, not a regular file
    (a named pipe or device, which would block or never end) or empty."""
    problem = special_file_problem(path)
    if problem:
        raise VideoDecodeError(path, problem)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file does not exist")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")


def check_short_side(value: object) -> None:
    """Raise ``ValueError`` unless ``value`` (a decode-time short side limit) is None or a whole
    number of pixels >= 1."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"the decode short side must be a whole number of pixels >= 1, got {value}")
