"""Decode + preprocessing of one 8-frame test view of a 720p clip, as a share of the bf16 forward.

One generated 10 s 1280x720 H.264 clip (30 fps, x264's default GOP of 250 frames with B-frames,
moving texture: camera-like) goes through the package's own pipeline for one view (1 clip x 1
crop, Kinetics layout): ``open_video`` -> segment sampling (``sample_indices``, clip 0 of 1) ->
``get_frames`` -> ``test_views`` (resize short side to 224, centre crop, normalise), with a fresh
reader per run as a DataLoader worker does. Every decoder setting and the B/16 8x224 batch-1
forward under ``--precision bf16`` (``prepare_model``) are timed in the same rounds, interleaved,
so that load on a shared machine hits them alike; medians over ``--runs``.

    python benchmarks/bench_decode_share.py [--runs 7] [--threads 1] [--workdir DIR]

The goal is a share <= 30% of the forward time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import av
import torch
from bench_decode import backends, make_clip

from uniformerv2 import create_model
from uniformerv2.export.deploy import prepare_model
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video import open_video, sample_indices, test_views

CFG = PreprocessConfig(num_frames=8, crop_size=224, num_clips=1, num_crops=1)


def settings() -> dict[str, dict]:
    """Label -> ``open_video`` keyword arguments: PyAV threads, decoder-side downscale, torchcodec."""
    found = {
        f"pyav, {threads} thread(s), max_short_side={short}": {"threads": threads, "max_short_side": short}
        for short in (None, 224)
        for threads in (1, 2)
    }
    if "torchcodec" in backends():
        found["torchcodec"] = {"backend": "torchcodec"}
    return found


def one_view(path: Path, kwargs: dict) -> tuple[float, float]:
    """(open + decode seconds, preprocessing seconds) of one test view."""
    start = time.perf_counter()
    reader = open_video(path, **kwargs)
    frames = reader.get_frames(sample_indices(reader.num_frames, CFG, 0, num_clips=1, one_based=False))
    decoded = time.perf_counter()
    test_views([frames], CFG)
    done = time.perf_counter()
    reader.close()
    return decoded - start, done - decoded


def decode_all(path: Path, skip_frame: str = "DEFAULT") -> tuple[float, float]:
    """(seconds, frames decoded) of a plain 1-thread decode of the whole clip, no RGB conversion.

    What any reader pays for a clip sampled across its whole length with one keyframe per GOP;
    ``skip_frame="NONREF"`` leaves out the frames nothing else references (the bound for a decoder
    that skips the unsampled B-frames).
    """
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = skip_frame
        count = sum(1 for _ in container.decode(stream))
    return time.perf_counter() - start, count


def bf16_forward(threads: int) -> Callable[[], float]:
    """Seconds of one B/16 8x224 batch-1 forward as ``predict --precision bf16`` runs it."""
    torch.manual_seed(0)
    model, _ = prepare_model(create_model("uniformerv2_b16", num_classes=400).eval(), precision="bf16")
    x = torch.randn(1, 3, 8, 224, 224)

    def run() -> float:
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            model(x)
        return time.perf_counter() - start

    run()  # warm-up: oneDNN primitives
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the forward")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_decode_share_"))
    path = workdir / "720p30.mp4"
    if not path.exists():
        make_clip(path, 1280, 720, seconds=10, fps=30)
    forward = bf16_forward(args.threads)
    options = settings()
    for kwargs in options.values():
        one_view(path, kwargs)  # warm-up: page cache, codec init
    decode: dict[str, list[float]] = defaultdict(list)
    prep: dict[str, list[float]] = defaultdict(list)
    forwards = []
    whole: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, float] = {}
    for _ in range(args.runs):
        for skip in ("DEFAULT", "NONREF"):
            seconds, counts[skip] = decode_all(path, skip)
            whole[skip].append(seconds)
        for label, kwargs in options.items():
            d, p = one_view(path, kwargs)
            decode[label].append(d)
            prep[label].append(p)
        forwards.append(forward())
    fwd = statistics.median(forwards)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\n{path.name}: 1280x720, 300 frames; {os.cpu_count()} CPUs, load average {load}; torch {torch.__version__}")
    print(f"B/16 8x224 batch-1 forward, --precision bf16, {args.threads} torch thread(s): {1000 * fwd:.0f} ms\n")
    print("| decoder setting | open + decode ms | preprocess ms | total ms | share of bf16 forward | <= 30% |")
    print("|---|---|---|---|---|---|")
    for label in options:
        d, p = statistics.median(decode[label]), statistics.median(prep[label])
        total = statistics.median([a + b for a, b in zip(decode[label], prep[label], strict=True)])
        share = total / fwd
        print(
            f"| {label} | {1000 * d:.0f} | {1000 * p:.1f} | {1000 * total:.0f} | {100 * share:.0f}% | "
            f"{'yes' if share <= 0.3 else 'no'} |"
        )
    for skip, label in (("DEFAULT", "every frame"), ("NONREF", "reference frames only (skip_frame=NONREF)")):
        ms = 1000 * statistics.median(whole[skip])
        print(
            f"\nDiagnostic, plain PyAV decode of the whole clip, 1 thread, {label}: {counts[skip]:.0f} frames, "
            f"{ms:.0f} ms ({ms / counts[skip]:.1f} ms/frame, {100 * ms / 1000 / fwd:.0f}% of the forward)"
        )
    if "torchcodec" not in options:
        print("\ntorchcodec: not installed")


if __name__ == "__main__":
    main()
