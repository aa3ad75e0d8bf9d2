"""Synthetic test videos whose frames encode their own index, written with PyAV.

Frame i is a 4 x 3 grid of flat grey cells; cell b (row-major) is bright when bit b of i is set.
Large flat cells survive lossy codecs and chroma subsampling, so :func:`decode_index` recovers i
from any decoded frame (up to 4095 frames).
"""

from __future__ import annotations

import fractions
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

GRID_COLS, GRID_ROWS = 4, 3
_DARK, _BRIGHT = 32, 224


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB picture of frame ``index``."""
    if not 0 <= index < 2 ** (GRID_COLS * GRID_ROWS):
        raise ValueError(f"index {index} does not fit in {GRID_COLS * GRID_ROWS} bits")
    image = np.full((height, width, 3), _DARK, np.uint8)
    for bit in range(GRID_COLS * GRID_ROWS):
        if index >> bit & 1:
            r, c = divmod(bit, GRID_COLS)
            image[
                r * height // GRID_ROWS : (r + 1) * height // GRID_ROWS,
                c * width // GRID_COLS : (c + 1) * width // GRID_COLS,
            ] = _BRIGHT
    return image


def decode_index(frame: np.ndarray | torch.Tensor) -> int:
    """Index coded in a decoded (H, W, 3) uint8 frame made from :func:`frame_image`."""
    image = np.asarray(frame, dtype=np.float32).mean(axis=-1)
    height, width = image.shape
    index = 0
    for bit in range(GRID_COLS * GRID_ROWS):
        r, c = divmod(bit, GRID_COLS)
        y0, y1 = r * height // GRID_ROWS, (r + 1) * height // GRID_ROWS
        x0, x1 = c * width // GRID_COLS, (c + 1) * width // GRID_COLS
        dy, dx = (y1 - y0) // 4, (x1 - x0) // 4
        if image[y0 + dy : y1 - dy, x0 + dx : x1 - dx].mean() > (_DARK + _BRIGHT) / 2:
            index |= 1 << bit
    return index


def make_video(
    path: str | os.PathLike[str],
    num_frames: int,
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
    fps: int = 25,
    *,
    pix_fmt: str | None = None,
    gop: int | None = None,
    bframes: int | None = None,
    vfr: bool = False,
    rotation: int = 0,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    format: str | None = None,
) -> Path:
    """Write a video whose frame i shows :func:`frame_image` (i).

    Args:
        path: output file; the container follows the extension (.mp4, .webm, .avi, .mkv).
        num_frames: frames to write.
        width: frame width.
        height: frame height (odd sizes need a pix_fmt without chroma subsampling, e.g. yuv444p).
        codec: FFmpeg encoder name (libx264, libvpx-vp9, mjpeg, mpeg4, ...).
        fps: nominal frame rate.
        pix_fmt: pixel format; yuvj420p for mjpeg, yuv420p otherwise, when None.
        gop: keyframe interval.
        bframes: maximum consecutive B-frames.
        vfr: irregular frame durations (40 ms, with every third frame 100 ms).
        rotation: counter-clockwise display rotation stored in the container (display matrix).
        options: extra encoder options.
        container_options: muxer options, e.g. ``{"movflags": "faststart"}`` (MP4 index first).
        format: container format when the extension does not say it (``"h264"``: raw elementary stream).

    Returns:
        The path written.
    """
    path = Path(path)
    opts = dict(options or {})
    if gop is not None:
        opts["g"] = str(gop)
    if bframes is not None:
        opts["bf"] = str(bframes)
    if codec == "libvpx-vp9":
        opts.setdefault("deadline", "realtime")
        opts.setdefault("cpu-used", "8")
    with av.open(str(path), "w", format=format, options=container_options or {}) as container:
        stream: Any = container.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
        if rotation:
            stream.set_display_rotation(rotation)
        time_base = fractions.Fraction(1, 1000)
        if vfr:
            stream.codec_context.time_base = time_base
        pts = 0
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            if vfr:
                frame.pts, frame.time_base = pts, time_base
                pts += 100 if i % 3 == 2 else 40
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def corrupt_bytes(path: str | os.PathLike[str], start: float, length: int, seed: int = 0) -> Path:
    """Overwrite ``length`` bytes with random ones at fraction ``start`` of the file (damage mid-file)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    offset = int(len(data) * start)
    data[offset : offset + length] = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def truncate(path: str | os.PathLike[str], fraction: float, out: str | os.PathLike[str]) -> Path:
    """Write the first ``fraction`` of ``path``'s bytes to ``out`` (a download cut short)."""
    data = Path(path).read_bytes()
    out = Path(out)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def make_audio(path: str | os.PathLike[str], codec: str = "aac", seconds: float = 0.5, rate: int = 22050) -> Path:
    """Write an audio-only file (a sine tone)."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream: Any = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        samples = int(seconds * rate)
        t = np.arange(samples) / rate
        fmt = stream.codec_context.format.name
        wave = 0.3 * np.sin(2 * np.pi * 440 * t)
        data = wave.astype(np.float32) if fmt.startswith("flt") else (wave * 32767).astype(np.int16)
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, samples - frame_size + 1, frame_size):
            frame = av.AudioFrame.from_ndarray(data[None, start : start + frame_size], format=fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_frame_folder(
    folder: str | os.PathLike[str], num_frames: int, template: str = "img_{:05d}.jpg", width: int = 64, height: int = 48
) -> Path:
    """Write frames 0..num_frames-1 as images named ``template.format(i + 1)`` (1-based, SSv2)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num_frames):
        Image.fromarray(frame_image(i, width, height)).save(folder / template.format(i + 1), quality=95)
    return folder
