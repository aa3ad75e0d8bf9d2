"""PyAV (FFmpeg) reader: exact frames by presentation timestamp, truncation-aware frame counts."""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from uniformerv2.errors import VideoDecodeError
from uniformerv2.video._reader import Verification, VideoReader, check_file, check_short_side

__all__ = ["PyAVReader"]

_logger = logging.getLogger("uniformerv2.video.decode")


@dataclass
class _FrameTable:
    """Timestamps of all frames from one demux pass (no decoding).

    Attributes:
        pts: presentation timestamp of frame i, in display order (stream time base).
        keyframes: display indices of the keyframes, sorted.
        seek_ts: per keyframe, the timestamp to seek to: its decoding timestamp (the one container
            indexes are built on; it is at or before the pts, so a backward seek never lands after
            the keyframe), else its pts.
        complete: False when demuxing stopped early on a read error (a truncated file).
    """

    pts: list[int]
    keyframes: list[int]
    seek_ts: list[int]
    complete: bool


class _SeekUnusable(Exception):
    """Timestamps cannot be mapped to frame indices: decode from the start instead."""


def _main_video_stream(container: Any) -> Any:
    """The first video stream that is not a still picture (cover art is stored as a one-frame
    "attached picture" video stream, e.g. in music files), or None."""
    return next((s for s in container.streams.video if not _is_still(s)), None)


def _is_still(stream: Any) -> bool:
    import av.stream

    flags = getattr(av.stream, "Disposition", None)
    still = 0 if flags is None else flags.attached_pic | getattr(flags, "still_image", 0)
    return bool(int(stream.disposition) & int(still))


def _describe_streams(container: Any) -> str:
    kinds = ["cover image" if s.type == "video" and _is_still(s) else s.type for s in container.streams]
    return ", ".join(kinds) if kinds else "none"


class PyAVReader(VideoReader):
    """Video file reader on PyAV (FFmpeg), the default backend.

    Random access seeks to the keyframe at or before the first wanted frame and decodes forward;
    frames are identified by their presentation timestamp, so B-frames, streams that do not
    start at pts 0 and variable frame rates are handled. The frame count comes from one demux
    pass over the packets (no decoding), cached per reader, because the container's count is
    missing for WebM/MKV and can be wrong for damaged files. Rotation metadata (display matrix)
    is applied, so frames come out as a player shows them (flips in the matrix are ignored).

    Args:
        path: video file.
        max_short_side: when set and the short side is larger, frames are scaled by FFmpeg's
            swscale (bilinear) during the RGB conversion so that the short side equals it. This
            is faster but changes pixels slightly compared with the official full-resolution
            decode followed by the model's resize; off by default.
        threads: decoder threads (0 = FFmpeg's choice). One per DataLoader worker is usually
            best.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_short_side: int | None = None, threads: int = 1) -> None:
        self.path = os.fspath(path)
        check_short_side(max_short_side)
        self.max_short_side = max_short_side
        self.threads = threads
        self._container: Any = None
        self._pid: int | None = None
        self._table: _FrameTable | None = None
        self._rotation: int | None = None
        self._size: tuple[int, int] | None = None
        self._seekable = True
        check_file(self.path)
        self._stream()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_container"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._container is not None and self._pid == os.getpid():
            self._container.close()
        self._container = None

    # -- opening -----------------------------------------------------------------------------

    def _stream(self) -> Any:
        """The first video stream, opening the file in this process if needed."""
        if self._container is None or self._pid != os.getpid():
            # A container inherited through fork shares the parent's file offset: reopen.
            self._container = self._open_container()
            self._pid = os.getpid()
        return _main_video_stream(self._container)

    def _open_container(self) -> Any:
        import av

        try:
            container = av.open(self.path, metadata_errors="ignore")
        except av.error.InvalidDataError as exc:
            raise VideoDecodeError(
                self.path, f"not a readable video: header missing or corrupt ({exc.strerror})"
            ) from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoDecodeError(self.path, f"cannot open: {exc}") from exc
        stream = _main_video_stream(container)
        if stream is None:
            kinds = _describe_streams(container)
            container.close()
            raise VideoDecodeError(self.path, f"no video stream (streams: {kinds})")
        if stream.codec_context is None:
            container.close()
            raise VideoDecodeError(self.path, "unsupported codec: FFmpeg has no decoder for this stream")
        stream.thread_type = "AUTO" if self.threads != 1 else "SLICE"
        stream.codec_context.thread_count = self.threads
        return container

    # -- metadata ----------------------------------------------------------------------------

    def _frame_table(self) -> _FrameTable:
        if self._table is None:
            self._table = self._scan()
        return self._table

    def _scan(self) -> _FrameTable:
        """Demux every packet of the video stream once and sort their timestamps.

        On a truncated file the packets that were lost are unknown, and a lost reference frame
        would shift the display index of every later frame. Every lost packet comes after the
        last packet read in decoding order, so its pts is larger than that packet's dts: the
        table then keeps only frames up to that dts, whose indices are certain.
        """
        import av

        self.close()  # reopening rewinds any input, also raw streams that cannot seek
        stream = self._stream()
        packets: list[tuple[int | None, int | None, bool]] = []
        complete = True
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.is_corrupt:
                    complete = False
                    break
                packets.append((packet.pts, packet.dts, packet.is_keyframe))
        except av.error.FFmpegError as exc:
            complete = False
            _logger.warning("%s: demuxing stopped after %d frames: %s", self.path, len(packets), exc)
        stamps = [pts if pts is not None else dts for pts, dts, _ in packets]
        limit = (packets[-1][1] if packets[-1][1] is not None else stamps[-1]) if packets else None
        counted = bool(self._stream().frames)  # the header's frame count confirms or refutes the cut
        complete = complete and not self._header_says_longer(packets)
        complete = complete and (counted or not _tail_has_gap(stamps, limit))
        if not complete and packets:
            if limit is not None:
                keep = [j for j, t in enumerate(stamps) if t is not None and t <= limit]
                packets, stamps = [packets[j] for j in keep], [stamps[j] for j in keep]
        if not stamps:
            raise VideoDecodeError(self.path, "the video stream has no decodable frames (file truncated?)")
        if any(t is None for t in stamps) or len(set(stamps)) != len(stamps):
            # No usable timestamps: frames are found by counting from the start.
            return _FrameTable(pts=list(range(len(stamps))), keyframes=[], seek_ts=[], complete=complete)
        order = sorted(range(len(stamps)), key=lambda j: stamps[j])  # type: ignore[arg-type, return-value]
        rank = {j: r for r, j in enumerate(order)}
        keys = sorted((rank[j], j) for j, (_, _, key) in enumerate(packets) if key)
        return _FrameTable(
            pts=[stamps[j] for j in order],  # type: ignore[misc]
            keyframes=[r for r, _ in keys],
            seek_ts=[packets[j][1] if packets[j][1] is not None else stamps[j] for _, j in keys],  # type: ignore[misc]
            complete=complete,
        )

    def _header_says_longer(self, packets: list[tuple[int | None, int | None, bool]]) -> bool:
        """True when the container header promises clearly more frames than were demuxed."""
        stream = self._stream()
        if stream.frames and stream.frames > len(packets):
            return True
        stamps = [p[0] for p in packets if p[0] is not None]
        if not stamps or not stream.duration or not stream.average_rate or not stream.time_base:
            return False
        period = 1 / (float(stream.average_rate) * float(stream.time_base))
        start = stream.start_time or 0
        return max(stamps) + 1.5 * period < start + stream.duration - period

    @property
    def num_frames(self) -> int:
        return len(self._frame_table().pts)

    @property
    def complete(self) -> bool:
        return self._frame_table().complete

    @property
    def fps(self) -> float:
        stream = self._stream()
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return float(rate) if rate else math.nan

    @property
    def duration(self) -> float:
        stream = self._stream()
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if self._container.duration is not None:
            return self._container.duration / 1_000_000
        return self.num_frames / self.fps

    @property
    def codec(self) -> str:
        return str(self._stream().codec_context.name)

    @property
    def rotation(self) -> int:
        """Counter-clockwise display rotation in degrees (0, 90, 180 or 270) applied to frames."""
        if self._rotation is None:
            frame = next(self._frames_sequential(), None)
            self._rotation = _rotation_of(frame[1]) if frame is not None else 0
        return self._rotation

    def _output_size(self) -> tuple[int, int]:
        """(height, width) of returned frames before rotation: the stream's size from its header,
        limited by ``max_short_side``. Kept for the whole video, so frames of a stream that changes
        resolution midway are rescaled to it (as the official decord reader does)."""
        if self._size is None:
            ctx = self._stream().codec_context
            self._size = _scaled_size(int(ctx.height), int(ctx.width), self.max_short_side)
        return self._size

    @property
    def height(self) -> int:
        h, w = self._output_size()
        return w if self.rotation in (90, 270) else h

    @property
    def width(self) -> int:
        h, w = self._output_size()
        return h if self.rotation in (90, 270) else w

    # -- decoding ----------------------------------------------------------------------------

    def _to_tensor(self, frame: Any) -> torch.Tensor:
        h, w = self._output_size()
        if (h, w) != (frame.height, frame.width):
            frame = frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR")
        image = torch.from_numpy(frame.to_ndarray(format="rgb24"))
        k = _rotation_of(frame) // 90
        return torch.rot90(image, k, dims=(0, 1)).contiguous() if k else image

    def _checked_tensor(self, index: int, frame: Any) -> torch.Tensor:
        if frame.is_corrupt:
            raise VideoDecodeError(self.path, f"frame {index} is corrupt (damaged or truncated data)")
        return self._to_tensor(frame)

    def verify(self) -> Verification:
        """Decode every packet of the video stream (no RGB conversion) and compare with the header.

        Reports packets the decoder rejects (corrupt data mid-file), frames it flags as damaged,
        a read error that ends demuxing, and a file whose frames end before the header's frame
        count or duration (truncated).
        """
        import av

        self.close()
        stream = self._stream()
        promised, expected, end = stream.frames, self._promised_frames(), self._promised_end()
        packets, decoded, last_time = 0, 0, None
        failed: list[tuple[float | None, str]] = []
        flagged: list[int] = []
        problems: list[str] = []
        try:
            for packet in self._container.demux(stream):
                packets += packet.size > 0
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    failed.append((_seconds(packet.pts, stream), exc.strerror or str(exc)))
                    continue
                for frame in frames:
                    flagged += [decoded] if frame.is_corrupt else []
                    decoded += 1
                    last_time = _seconds(frame.pts, stream) if frame.pts is not None else last_time
        except av.error.FFmpegError as exc:
            problems.append(f"reading stopped after {packets} packets: {exc.strerror or exc}")
        finally:
            self.close()
        if failed:
            at = "" if failed[0][0] is None else f" at {failed[0][0]:.2f} s"
            problems.append(
                f"corrupt data: {len(failed)} of {packets} packets do not decode (first{at}: {failed[0][1]})"
            )
        if flagged:
            problems.append(f"damaged frames (the decoder flags them): {len(flagged)}, first frame {flagged[0]}")
        if promised and decoded < promised:
            problems.append(f"truncated: the header promises {promised} frames, {decoded} decode")
        elif end is not None and last_time is not None and last_time + 2.5 / self.fps < end:
            problems.append(f"truncated: frames end at {last_time:.2f} s, the header says {end:.2f} s")
        return Verification(decoded, expected, problems)

    def _promised_end(self) -> float | None:
        """End time in seconds that the header gives (stream duration, else the container's)."""
        stream = self._stream()
        if stream.duration and stream.time_base:
            return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
        if self._container.duration:
            return (self._container.duration + (self._container.start_time or 0)) / 1_000_000
        return None

    def _promised_frames(self) -> int | None:
        """Frame count from the header: stored, or estimated from its duration and frame rate."""
        stream = self._stream()
        if stream.frames:
            return int(stream.frames)
        end = self._promised_end()
        start = _seconds(stream.start_time, stream) or 0.0
        return None if end is None or math.isnan(self.fps) else round((end - start) * self.fps)

    def _decoded(self, stream: Any) -> Iterator[Any]:
        """Decoded frames from the current position, up to the first packet the demuxer flags as
        corrupt (one cut short by truncation), then the frames still buffered in the decoder.

        The frame table ends before that packet too (:meth:`_scan`), so it is never needed; sent
        to the decoder it would fail and lose the buffered (reordered) frames before it.
        """
        for packet in self._container.demux(stream):
            if packet.is_corrupt:
                yield from stream.codec_context.decode(None)
                return
            yield from packet.decode()

    def _frames_sequential(self) -> Iterator[tuple[int, Any]]:
        """(index, av frame) from the first frame on, counting frames (no timestamps needed)."""
        self.close()
        stream = self._stream()
        yield from enumerate(self._decoded(stream))

    def _frames_from(self, key: int) -> Iterator[tuple[int, Any]]:
        """(index, av frame) after seeking to the keyframe with display index ``key``."""
        table = self._frame_table()
        stream = self._stream()
        self._container.seek(table.seek_ts[table.keyframes.index(key)], stream=stream, backward=True, any_frame=False)
        for frame in self._decoded(stream):
            stamp = frame.pts if frame.pts is not None else frame.dts
            pos = bisect.bisect_left(table.pts, stamp) if stamp is not None else len(table.pts)
            if pos >= len(table.pts) or table.pts[pos] != stamp:
                raise _SeekUnusable
            yield pos, frame

    def _decode(self, wanted: list[int]) -> dict[int, torch.Tensor]:
        import av

        try:
            if not self._frame_table().keyframes or not self._seekable:
                return self._decode_sequential(wanted)
            try:
                return self._decode_seeking(wanted)
            except _SeekUnusable:
                _logger.debug("%s: seeking does not reach the wanted frames; decoding from the start", self.path)
                self._seekable = False
                return self._decode_sequential(wanted)
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(self.path, f"decoding failed: {exc}") from exc

    def _missing(self, index: int) -> VideoDecodeError:
        table = self._frame_table()
        hint = " (the file is truncated)" if not table.complete else ""
        return VideoDecodeError(self.path, f"frame {index} could not be decoded{hint}")

    def _decode_sequential(self, wanted: list[int]) -> dict[int, torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        targets = set(wanted)
        for index, frame in self._frames_sequential():
            if index in targets:
                out[index] = self._checked_tensor(index, frame)
                if len(out) == len(targets):
                    return out
        raise self._missing(min(targets - out.keys()))

    def _decode_seeking(self, wanted: list[int]) -> dict[int, torch.Tensor]:
        keys = self._frame_table().keyframes
        out: dict[int, torch.Tensor] = {}
        pos = 0
        while pos < len(wanted):
            target = wanted[pos]
            key_pos = max(bisect.bisect_right(keys, target) - 1, 0)
            pos = self._decode_run(wanted, pos, keys, key_pos, out)
        return out

    def _decode_run(
        self, wanted: list[int], pos: int, keys: list[int], key_pos: int, out: dict[int, torch.Tensor]
    ) -> int:
        """Seek once and decode forward, collecting ``wanted[pos:]``; return the next position.

        Decoding continues past a wanted frame while the next wanted frame has no keyframe
        closer than the current position; otherwise it returns so that the caller seeks again.
        A seek that lands after the target (open GOPs) retries from the previous keyframe.
        """
        target = wanted[pos]
        for attempt in range(key_pos, -1, -1):
            frames = self._frames_from(keys[attempt])
            first = next(frames, None)
            if first is None or first[0] > target:
                continue
            for index, frame in _chain(first, frames):
                if index == wanted[pos]:
                    out[index] = self._checked_tensor(index, frame)
                    pos += 1
                    if pos == len(wanted):
                        return pos
                    next_key = keys[max(bisect.bisect_right(keys, wanted[pos]) - 1, 0)]
                    if next_key > index + 1:
                        return pos
                elif index > wanted[pos]:
                    raise _SeekUnusable  # a frame was skipped after the seek: let a full decode decide
            raise _SeekUnusable
        raise _SeekUnusable

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        import av

        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        expected = start
        try:
            for index, frame in self._frames_at(start):
                if index >= stop:
                    return
                if index < expected:
                    continue
                if index > expected:
                    raise self._missing(expected)
                yield self._to_tensor(frame)
                expected += 1
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(self.path, f"decoding failed: {exc}") from exc
        except _SeekUnusable as exc:
            raise VideoDecodeError(self.path, "cannot seek: frame timestamps are inconsistent") from exc
        if expected < stop:
            raise self._missing(expected)

    def _frames_at(self, start: int) -> Iterator[tuple[int, Any]]:
        """(index, av frame) from the keyframe before ``start`` on, or from the first frame when
        seeking cannot reach ``start``."""
        keys = self._frame_table().keyframes
        if start == 0 or not keys or not self._seekable:
            return self._frames_sequential()
        frames = self._frames_from(keys[max(bisect.bisect_right(keys, start) - 1, 0)])
        first = next(frames, None)
        if first is None or first[0] > start:
            self._seekable = False
            return self._frames_sequential()
        return _chain(first, frames)


def _tail_has_gap(stamps: list[int | None], limit: int | None) -> bool:
    """True when frames shown after ``limit`` (the last decoded dts) have a hole in their pts.

    Those are the frames a cut could have removed; a step more than 1.5 times the median frame
    step among them betrays a lost frame. Used only for containers without a frame count
    (WebM/MKV); exact for constant frame rates, while a variable-rate stream with B-frames may
    lose its last few (reordered) frames.
    """
    known = sorted(t for t in stamps if t is not None)
    if limit is None or len(known) < 3:
        return False
    steps = np.diff(np.asarray(known, dtype=np.float64))
    median = float(np.median(steps))
    tail = np.asarray(known[1:]) > limit
    return bool(np.any(steps[tail] > 1.5 * median))


def _seconds(stamp: int | None, stream: Any) -> float | None:
    """A timestamp of ``stream`` in seconds."""
    return None if stamp is None or stream.time_base is None else float(stamp * stream.time_base)


def _chain(first: tuple[int, Any], rest: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
    yield first
    yield from rest


def _rotation_of(frame: Any) -> int:
    """Counter-clockwise display rotation of a PyAV frame, normalised to 0/90/180/270."""
    degrees = getattr(frame, "rotation", 0) or 0
    return int(round(degrees / 90.0)) % 4 * 90


def _scaled_size(height: int, width: int, max_short_side: int | None) -> tuple[int, int]:
    """(height, width) after limiting the short side to ``max_short_side`` (aspect kept)."""
    short = min(height, width)
    if max_short_side is None or short <= max_short_side:
        return height, width
    scale = max_short_side / short
    if height <= width:
        return max_short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), max_short_side
