"""Peak memory of snippet feature extraction (``embed(..., window=, stride=)``) against video length.

Generates 64x48, 25 fps H.264 videos of 1, 10 and 60 minutes (moving texture, x264 ultrafast)
into ``--workdir`` (default: a temporary folder, deleted afterwards), then extracts features of each
in a fresh process with a small random UniFormerV2 (64 wide, 2 blocks, 8 frames, 32 px crops; the
model is not what is measured) and reports the process's peak resident memory (``ru_maxrss``), the
resident memory just before extraction, the number of snippets and the wall time. The 1-minute
video is the baseline: bounded memory means the 60-minute peak stays at the 1-minute peak, while
holding the decoded frames would take ``frames * 64 * 48 * 3`` bytes (829 MB for an hour).

    python benchmarks/bench_features_memory.py [--minutes 1 10 60] [--window 16] [--stride 8] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS = 64, 48, 25


def make_video(path: Path, minutes: float) -> Path:
    """A ``minutes``-long 64x48 H.264 clip whose texture moves every frame."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "28"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(round(minutes * 60 * FPS)):
            value = 128 + 100 * np.sin(xx / 7 + yy / 11 + i / 5)
            image = np.repeat(value[..., None], 3, axis=2).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def child(video: str, window: int, stride: int) -> None:
    """Extract features of ``video`` and print a JSON line of measurements."""
    import torch

    import uniformerv2
    from uniformerv2.preprocess import PreprocessConfig

    torch.manual_seed(0)
    config = uniformerv2.UniFormerV2Config(
        input_resolution=32, patch_size=16, width=64, layers=2, heads=1, n_dim=64, n_head=1, return_list=(0, 1)
    )
    model = uniformerv2.UniFormerV2(config).eval()
    model.pretrained_cfg = {"labels": None, "preprocess": PreprocessConfig(num_frames=8, crop_size=32)}
    before = _rss_mb()
    start = time.perf_counter()
    out = uniformerv2.embed(video, model, window=window, stride=stride, batch_size=32)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    print(
        json.dumps(
            {
                "frames": out.num_frames,
                "snippets": len(out.start_frame),
                "rss_before_mb": round(before, 1),
                "peak_rss_mb": round(peak, 1),
                "seconds": round(seconds, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--workdir", default=None, help="where the generated videos go (default: a temp folder)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.window, args.stride)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(
            f"| video | frames | snippets (window {args.window}, stride {args.stride}) | RSS before MB | peak RSS MB "
            "| decoded frames would take MB | seconds |"
        )
        print("|---|---|---|---|---|---|---|")
        for minutes in args.minutes:
            path = folder / f"features_{minutes:g}min.mp4"
            if not path.exists():
                make_video(path, minutes)
            command = [sys.executable, __file__, "--child", str(path), "--window", str(args.window)]
            command += ["--stride", str(args.stride)]
            line = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            row = json.loads(line)
            raw = row["frames"] * WIDTH * HEIGHT * 3 / 2**20
            print(
                f"| {minutes:g} min 64x48 | {row['frames']} | {row['snippets']} | {row['rss_before_mb']} "
                f"| {row['peak_rss_mb']} | {raw:.0f} | {row['seconds']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
