"""torchcodec reader (optional backend, exact seek mode).

torchcodec numbers frames by its own scan, which on a damaged file can count frames that do not
decode (a packet cut mid-GOP, frames that precede a lost reference): the frame it returns for an
index is then another one. So the frame indices and their timestamps come from the same demux
table as the PyAV reader (which keeps only frames whose display index is certain), and every
frame torchcodec returns is checked against the timestamp its index must have.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import Any

import torch

from uniformerv2.errors import VideoDecodeError
from uniformerv2.video._pyav import PyAVReader
from uniformerv2.video._reader import VideoReader, check_file

__all__ = ["TorchCodecReader"]


class TorchCodecReader(VideoReader):
    """Video file reader on torchcodec (exact seek mode), used only when it is installed.

    Args:
        path: video file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        check_file(self.path)
        self._decoder: Any = None
        self._pid: int | None = None
        self._dec()
        self._index = PyAVReader(self.path)  # demux-only timestamp table; decodes nothing
        self._pts: list[float] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_decoder": None, "_pid": None}

    def _dec(self) -> Any:
        if self._decoder is None or self._pid != os.getpid():
            try:
                from torchcodec.decoders import VideoDecoder
            except ImportError as exc:
                raise ImportError("backend='torchcodec' needs `pip install uniformerv2[torchcodec]`") from exc
            try:
                self._decoder = VideoDecoder(self.path, seek_mode="exact", dimension_order="NHWC")
            except (RuntimeError, ValueError) as exc:
                reason = re.sub(r"^.*?\.cpp:\d+, ", "", str(exc).strip().splitlines()[0])
                raise VideoDecodeError(self.path, f"cannot open: {reason}") from exc
            self._pid = os.getpid()
        return self._decoder

    @property
    def num_frames(self) -> int:
        return min(int(self._dec().metadata.num_frames), self._index.num_frames)

    @property
    def complete(self) -> bool:
        return self._index.complete

    def _expected_pts(self) -> list[float]:
        """Presentation time in seconds of frame i, in display order (the PyAV demux table)."""
        if self._pts is None:
            stream = self._index._stream()
            base = float(stream.time_base)
            self._pts = [stamp * base for stamp in self._index._frame_table().pts]
            self._index.close()
        return self._pts

    @property
    def fps(self) -> float:
        fps = self._dec().metadata.average_fps
        return float(fps) if fps else math.nan

    @property
    def height(self) -> int:
        return int(self._dec().metadata.height)

    @property
    def width(self) -> int:
        return int(self._dec().metadata.width)

    @property
    def codec(self) -> str:
        return str(self._dec().metadata.codec)

    def _decode(self, wanted: list[int]) -> dict[int, torch.Tensor]:
        if wanted and max(wanted) >= self.num_frames:
            raise VideoDecodeError(self.path, f"frame {max(wanted)} is beyond the {self.num_frames} decodable frames")
        try:
            frames = self._dec().get_frames_at(indices=wanted)
        except (RuntimeError, IndexError) as exc:
            raise VideoDecodeError(self.path, f"decoding failed: {exc}") from exc
        if frames.data.shape[0] != len(wanted):
            got = frames.data.shape[0]
            raise VideoDecodeError(self.path, f"decoded {got} of {len(wanted)} frames (file truncated?)")
        expected = self._expected_pts()
        tolerance = 0.5 / self.fps if math.isfinite(self.fps) and self.fps > 0 else 1e-3
        for index, pts in zip(wanted, frames.pts_seconds.tolist(), strict=True):
            if abs(pts - expected[index]) > tolerance:
                raise VideoDecodeError(
                    self.path, f"frame {index} does not decode exactly (got the frame at {pts:.3f} s; file damaged?)"
                )
        return dict(zip(wanted, frames.data, strict=True))

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        end = self.num_frames if stop is None else min(stop, self.num_frames)
        for index in range(start, end):
            yield self._decode([index])[index]
