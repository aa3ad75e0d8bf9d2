"""Test-time resize and crop: identical to the official resize-then-crop, in memory bounded by the output."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from videogen import make_video

from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video.transforms import _crop_then_resize, crop_views, test_views


def _official_views(frames: torch.Tensor, cfg: PreprocessConfig, crops: list[int]) -> torch.Tensor:
    """The official order on the full frame: normalise, resize the short side (floor rule), crop."""
    x = frames.permute(3, 0, 1, 2).float() / 255.0
    if cfg.channel_order == "BGR":
        x = x.flip(0)
    x = (x - torch.tensor(cfg.mean).view(3, 1, 1, 1)) / torch.tensor(cfg.std).view(3, 1, 1, 1)
    h, w = x.shape[-2:]
    size = cfg.crop_size
    if min(h, w) != size:
        new = (size, math.floor(w / h * size)) if h <= w else (math.floor(h / w * size), size)
        x = F.interpolate(x, size=new, mode="bilinear", align_corners=False)
    h, w = x.shape[-2:]
    out = []
    for s in crops:
        y0, x0 = math.ceil((h - size) / 2), math.ceil((w - size) / 2)
        if h > w:
            y0 = {0: 0, 1: y0, 2: h - size}[s]
        else:
            x0 = {0: 0, 1: x0, 2: w - size}[s]
        out.append(x[..., y0 : y0 + size, x0 : x0 + size])
    return torch.stack(out)


SHAPES = [(240, 320), (320, 240), (48, 64), (61, 97), (360, 640), (1080, 1920), (224, 300), (100, 100), (7, 5)]


def _frames(height: int, width: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(height * 1000 + width)
    return torch.randint(0, 256, (1, height, width, 3), dtype=torch.uint8, generator=gen)


@pytest.mark.parametrize("height,width", SHAPES)
@pytest.mark.parametrize("crop_size,order", [(224, "RGB"), (32, "BGR")])
def test_ordinary_frames_give_the_official_views_exactly(height, width, crop_size, order):
    frames = _frames(height, width)
    cfg = PreprocessConfig(crop_size=crop_size, channel_order=order, num_crops=3)
    expected = _official_views(frames, cfg, [0, 1, 2])
    assert torch.equal(crop_views(frames, cfg, [0, 1, 2]), expected)
    assert torch.equal(test_views([frames], cfg), expected)
    # cropping before resizing computes the same pixels (PyTorch's kernel may round its last bit otherwise)
    torch.testing.assert_close(_crop_then_resize(frames, cfg, [0, 1, 2]), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("height,width", [(1, 600), (600, 1), (2, 997), (3, 100), (100, 3)])
def test_extreme_aspect_ratios_match_the_official_result(height, width):
    frames = _frames(height, width)
    cfg = PreprocessConfig(crop_size=16, num_crops=3)  # small enough to resize the full frame for the reference
    expected = _official_views(frames, cfg, [0, 1, 2])
    torch.testing.assert_close(crop_views(frames, cfg, [0, 1, 2]), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(test_views([frames], cfg), expected, rtol=0, atol=1e-6)


_CHILD = textwrap.dedent(
    """
    import json, sys
    import torch
    from uniformerv2.preprocess import PreprocessConfig
    from uniformerv2.video import extract_views, open_video

    def peak_kb():  # this process's peak RSS (ru_maxrss would include the parent's from before exec)
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

    reader = open_video(sys.argv[1])
    reader.get_frames([0])
    before = peak_kb()
    views = extract_views(reader, PreprocessConfig())  # 8 frames, 224 px, 4 clips x 3 crops
    after = peak_kb()
    print(json.dumps({"shape": list(views.shape), "finite": bool(torch.isfinite(views).all()),
                      "before_kb": before, "after_kb": after}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux /proc")
def test_thin_clip_preprocessed_in_bounded_memory(tmp_path):
    path = make_video(tmp_path / "thin.mkv", 16, width=1000, height=1, codec="libx264", pix_fmt="yuv444p")
    run = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["shape"] == [12, 3, 8, 224, 224] and report["finite"]
    grown_mb = (report["after_kb"] - report["before_kb"]) / 1024
    # The output is 12 x 3 x 8 x 224 x 224 float32 = 58 MB; resizing one whole clip would take 4.8 GB.
    assert grown_mb < 400, f"preprocessing a 1x1000 clip raised peak memory by {grown_mb:.0f} MB"
    assert report["after_kb"] / 1024 < 600
