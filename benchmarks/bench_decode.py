"""Time to decode the 8 frames of one clip (segment sampling, clip 0 of 1) per backend.

Two generated 10 s H.264 clips (1280x720 and 340x256, 25 fps, x264 default GOP 250 with
B-frames, moving textured content) are read with a fresh reader per run, as a DataLoader worker
does: open, frame count, seek and decode, RGB conversion. Prints a markdown table (median of
``--runs``) and the pixel difference that ``max_short_side`` causes after the official test
preprocessing.

    python benchmarks/bench_decode.py [--runs 7] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video import open_video, segment_indices, val_transform


def make_clip(path: Path, width: int, height: int, seconds: int = 10, fps: int = 25) -> Path:
    """H.264 clip with smooth moving texture (roughly camera-like bitrate)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 6, (height, width, 1)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            t = i / fps
            base = (
                128
                + 60 * np.sin(xx / 37 + 2 * t)[..., None] * np.array([1.0, 0.7, 0.4])
                + 50 * np.cos(yy / 23 - 3 * t)[..., None]
            )
            image = np.clip(base + np.roll(noise, i * 3, axis=1), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def time_clip(path: Path, runs: int, **open_kwargs) -> float:
    """Median seconds to open ``path`` and decode the 8 segment-sampled frames."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        reader = open_video(path, **open_kwargs)
        reader.get_frames(segment_indices(reader.num_frames, 8, 0, 1))
        times.append(time.perf_counter() - start)
        reader.close()
    return statistics.median(times)


def backends() -> list[str]:
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # not installed or its FFmpeg libraries are missing
        return ["pyav"]
    return ["pyav", "torchcodec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_decode_"))
    clips = {
        "1280x720": make_clip(workdir / "720p.mp4", 1280, 720),
        "340x256": make_clip(workdir / "340x256.mp4", 340, 256),
    }
    print("| clip | backend | max_short_side | threads | median ms / clip (8 frames) |")
    print("|---|---|---|---|---|")
    for name, path in clips.items():
        for backend in backends():
            settings = [(None, 1), (224, 1), (None, 0)] if backend == "pyav" else [(None, 1)]
            for short, threads in settings:
                kwargs = {"backend": backend}
                if backend == "pyav":
                    kwargs.update(max_short_side=short, threads=threads)
                ms = 1000 * time_clip(path, args.runs, **kwargs)
                print(f"| {name} | {backend} | {short or 'off'} | {threads if backend == 'pyav' else '-'} | {ms:.0f} |")
    cfg = PreprocessConfig(num_frames=8, crop_size=224)
    print("\n| clip | max_short_side | mean abs diff (0-255) | max abs diff (0-255) |")
    print("|---|---|---|---|")
    for name, path in clips.items():
        full = open_video(path)
        indices = segment_indices(full.num_frames, 8, 0, 1)
        reference = val_transform(full.get_frames(indices), cfg)
        small = val_transform(open_video(path, max_short_side=224).get_frames(indices), cfg)
        diff = (reference - small).abs() * 0.225 * 255  # back to 0-255 pixel units
        print(f"| {name} | 224 | {diff.mean():.2f} | {diff.max():.0f} |")
    print("\n| clip | max_short_side | median ms, val_transform of 8 decoded frames |")
    print("|---|---|---|")
    for name, path in clips.items():
        for short in (None, 224):
            reader = open_video(path, max_short_side=short)
            frames = reader.get_frames(segment_indices(reader.num_frames, 8, 0, 1))
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                val_transform(frames, cfg)
                times.append(time.perf_counter() - start)
            print(f"| {name} | {short or 'off'} | {1000 * statistics.median(times):.1f} |")


if __name__ == "__main__":
    main()
