"""torchcodec reader (optional backend, exact seek mode)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import Any

import torch

from uniformerv2.errors import VideoDecodeError
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
        return int(self._dec().metadata.num_frames)

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
        try:
            batch = self._dec().get_frames_at(indices=wanted).data
        except (RuntimeError, IndexError) as exc:
            raise VideoDecodeError(self.path, f"decoding failed: {exc}") from exc
        if batch.shape[0] != len(wanted):
            raise VideoDecodeError(self.path, f"decoded {batch.shape[0]} of {len(wanted)} frames (file truncated?)")
        return dict(zip(wanted, batch, strict=False))

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        end = self.num_frames if stop is None else min(stop, self.num_frames)
        for index in range(start, end):
            yield self._decode([index])[index]
