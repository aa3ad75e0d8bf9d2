"""Generate ``assets/sample.mp4``: a 3-second synthetic clip of moving shapes (no real footage).

The picture is computed from scratch (a shaded background, a bouncing ball, a sliding square and a
spinning bar), so the file carries no third-party rights; it is dedicated to the public domain
(CC0 1.0). Run from the repository root::

    python scripts/make_sample_video.py [--out assets/sample.mp4]
"""

from __future__ import annotations

import argparse
import fractions
import math
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 25, 3


def render(t: float) -> np.ndarray:
    """(HEIGHT, WIDTH, 3) uint8 RGB frame at time ``t`` seconds."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    image = np.empty((HEIGHT, WIDTH, 3), np.float32)
    image[..., 0] = 40 + 60 * y / HEIGHT
    image[..., 1] = 90 + 50 * x / WIDTH
    image[..., 2] = 140 + 40 * np.sin(2 * math.pi * (x / WIDTH + 0.2 * t))
    # A ball bouncing on a parabola.
    bx = 40 + (WIDTH - 80) * (0.5 + 0.5 * math.sin(2 * math.pi * t / SECONDS))
    by = HEIGHT - 40 - 150 * abs(math.sin(2 * math.pi * t / 1.5))
    image[(x - bx) ** 2 + (y - by) ** 2 <= 22**2] = (230, 60, 50)
    # A square sliding left to right.
    sx = -40 + (WIDTH + 80) * (t / SECONDS)
    image[(abs(x - sx) <= 18) & (abs(y - 50) <= 18)] = (40, 60, 200)
    # A bar spinning around the frame centre.
    angle = 2 * math.pi * t / 2.0
    u = (x - WIDTH / 2) * math.cos(angle) + (y - HEIGHT / 2) * math.sin(angle)
    v = -(x - WIDTH / 2) * math.sin(angle) + (y - HEIGHT / 2) * math.cos(angle)
    image[(abs(u) <= 50) & (abs(v) <= 5)] = (250, 220, 60)
    return image.clip(0, 255).astype(np.uint8)


def write(path: Path) -> Path:
    """Encode the clip as H.264 (yuv420p, CRF 30) in MP4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "30", "preset": "slow", "g": str(FPS)})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, FPS)
        for i in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(render(i / FPS), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("assets/sample.mp4"))
    out = write(parser.parse_args(argv).out)
    print(f"{out}: {out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
