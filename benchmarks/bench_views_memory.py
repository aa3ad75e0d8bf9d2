"""Peak memory of test-time preprocessing (4 clips x 3 crops of 8 frames, 224 px) by frame shape.

For each frame shape, writes a 16-frame H.264 clip (yuv444p, so 1-pixel sides are allowed) and, in
a fresh process per (shape, method), decodes it and builds the 12 views with

* ``official``: the official steps on the whole frame, ``uniform_crop(short_side_resize(normalize(x)))``
  (the baseline, run in the same invocation);
* ``crop_views``: what ``extract_views`` uses, bounded by the output.

It reports the resident memory just before preprocessing (clips decoded), the process's peak resident
memory (``VmHWM``, which includes decoding), the wall time, and whether both methods give the same
views (max abs difference).
Each child runs under an address-space limit (``--limit-gb``), so a baseline that needs more reports
the allocation error instead of swapping.

    python benchmarks/bench_views_memory.py [--shapes 240x320 1x600 1x1000 1x2000] [--limit-gb 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time

def hwm_mb():  # this process's peak RSS; ru_maxrss would include the parent's from before exec
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM")) / 1024

limit = int(float(sys.argv[3]) * 2**30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import torch
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video import open_video
from uniformerv2.video.sampling import sample_indices
from uniformerv2.video.transforms import crop_views, normalize, short_side_resize, uniform_crop

cfg = PreprocessConfig()
reader = open_video(sys.argv[1])
clips = [reader.get_frames(sample_indices(reader.num_frames, cfg, k, one_based=False)) for k in range(4)]

def official(frames):
    x = short_side_resize(normalize(frames, cfg), cfg.crop_size)
    return torch.stack([uniform_crop(x, cfg.crop_size, s) for s in (0, 1, 2)])

method = {"official": official, "crop_views": lambda f: crop_views(f, cfg, [0, 1, 2])}[sys.argv[2]]
with open("/proc/self/statm") as handle:
    before = int(handle.read().split()[1]) * resource.getpagesize() / 2**20
start = time.perf_counter()
try:
    views = torch.cat([method(f) for f in clips])
except (RuntimeError, MemoryError) as exc:
    print(json.dumps({"error": str(exc).splitlines()[0][-120:]}))
    sys.exit(0)
seconds = time.perf_counter() - start
peak = hwm_mb()
torch.save(views, sys.argv[4])
print(json.dumps({"before_mb": round(before), "peak_mb": round(peak), "seconds": round(seconds, 2)}))
"""


def make_clip(path: Path, height: int, width: int) -> Path:
    """16 frames of a moving texture, H.264 yuv444p."""
    import av
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for i in range(16):
            value = 128 + 100 * np.sin(xx / 7 + yy / 11 + i / 3)
            image = np.repeat(value[..., None], 3, axis=2).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["240x320", "1080x1920", "1x600", "1x1000", "1x2000"])
    parser.add_argument("--limit-gb", type=float, default=8.0)
    args = parser.parse_args()
    import torch

    print("| frame (HxW) | method | RSS before MB | peak RSS MB | seconds | max abs diff to official |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            height, width = (int(v) for v in shape.split("x"))
            clip = make_clip(Path(tmp) / f"{shape}.mkv", height, width)
            results = {}
            for method in ("official", "crop_views"):
                out = Path(tmp) / f"{shape}-{method}.pt"
                run = subprocess.run(
                    [sys.executable, "-c", CHILD, str(clip), method, str(args.limit_gb), str(out)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[method] = json.loads(run.stdout.strip().splitlines()[-1])
                results[method]["views"] = torch.load(out, weights_only=True) if out.exists() else None
            reference = results["official"]["views"]
            for method, row in results.items():
                if "error" in row:
                    print(f"| {shape} | {method} | - | fails: {row['error']} | - | - |")
                    continue
                diff = "-" if reference is None else f"{(row['views'] - reference).abs().max().item():.1e}"
                print(f"| {shape} | {method} | {row['before_mb']} | {row['peak_mb']} | {row['seconds']} | {diff} |")


if __name__ == "__main__":
    main()
