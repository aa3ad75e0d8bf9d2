"""Test-view preprocessing against an independent re-statement of the official code (§3.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from videogen import decode_index, make_video

from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video import extract_views, open_video, segment_indices
from uniformerv2.video import transforms as T


def _frames(t, h, w, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8))


def _reference_view(frames: np.ndarray, size: int, spatial_idx: int, mean, std, bgr=False) -> np.ndarray:
    """Normalise in numpy, resize with F.interpolate, crop with explicit offsets."""
    x = frames.astype(np.float32) / 255.0
    if bgr:
        x = x[..., ::-1]
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    x = np.ascontiguousarray(x.transpose(3, 0, 1, 2))  # C, T, H, W
    _, _, h, w = x.shape
    if min(h, w) != size:
        nh, nw = (size, int(w / h * size)) if h <= w else (int(h / w * size), size)
        x = F.interpolate(torch.from_numpy(x), size=(nh, nw), mode="bilinear", align_corners=False).numpy()
    _, _, h, w = x.shape
    y0, x0 = math.ceil((h - size) / 2), math.ceil((w - size) / 2)
    if spatial_idx != 1:
        if h > w:
            y0 = 0 if spatial_idx == 0 else h - size
        else:
            x0 = 0 if spatial_idx == 0 else w - size
    return x[:, :, y0 : y0 + size, x0 : x0 + size]


@pytest.mark.parametrize(
    "hw,expected",
    [((240, 320), (224, 298)), ((320, 240), (298, 224)), ((224, 300), (224, 300)), ((100, 101), (224, 226))],
)
def test_short_side_resize_sizes(hw, expected):
    x = torch.zeros(3, 2, *hw)
    assert tuple(T.short_side_resize(x, 224).shape[-2:]) == expected
    if min(hw) == 224:
        assert T.short_side_resize(x, 224) is x


def test_uniform_crop_offsets():
    x = torch.arange(10 * 16).float().view(1, 1, 10, 16)
    assert T.uniform_crop(x, 8, 0)[0, 0, 0, 0] == 1 * 16  # left, vertically centred
    assert T.uniform_crop(x, 8, 1)[0, 0, 0, 0] == 1 * 16 + 4  # y = ceil(2/2) = 1, x = ceil(8/2) = 4
    assert T.uniform_crop(x, 8, 2)[0, 0, 0, 0] == 1 * 16 + 8  # right
    tall = torch.arange(15 * 8).float().view(1, 1, 15, 8)
    assert T.uniform_crop(tall, 8, 0)[0, 0, 0, 0] == 0  # top
    assert T.uniform_crop(tall, 8, 1)[0, 0, 0, 0] == 4 * 8  # ceil(7/2) = 4
    assert T.uniform_crop(tall, 8, 2)[0, 0, 0, 0] == 7 * 8  # bottom


@pytest.mark.parametrize("bgr", [False, True])
@pytest.mark.parametrize("hw", [(48, 64), (64, 40), (32, 32)])
def test_views_match_reference(hw, bgr):
    cfg = PreprocessConfig(
        num_frames=3,
        crop_size=32,
        num_clips=2,
        num_crops=3,
        channel_order="BGR" if bgr else "RGB",
        mean=(0.4, 0.45, 0.5),
        std=(0.2, 0.25, 0.3),
    )
    clips = [_frames(3, *hw, seed=1), _frames(3, *hw, seed=2)]
    views = T.test_views(clips, cfg)
    assert views.shape == (6, 3, 3, 32, 32) and views.dtype == torch.float32
    for j in range(6):
        ref = _reference_view(clips[j // 3].numpy(), 32, j % 3, cfg.mean, cfg.std, bgr)
        np.testing.assert_allclose(views[j].numpy(), ref, atol=1e-5)


def test_single_crop_is_centre_and_val_transform():
    cfg = PreprocessConfig(num_frames=2, crop_size=16, num_clips=1, num_crops=1)
    frames = _frames(2, 20, 30)
    views = T.test_views([frames], cfg)
    assert views.shape == (1, 3, 2, 16, 16)
    ref = _reference_view(frames.numpy(), 16, 1, cfg.mean, cfg.std)
    np.testing.assert_allclose(views[0].numpy(), ref, atol=1e-5)
    assert torch.equal(T.val_transform(frames, cfg), views[0])


def test_normalize_values():
    cfg = PreprocessConfig()
    frames = torch.tensor([0, 255, 114], dtype=torch.uint8).view(1, 1, 1, 3)
    x = T.normalize(frames, cfg)
    assert x.shape == (3, 1, 1, 1)
    expected = (torch.tensor([0, 1, 114 / 255]) - 0.45) / 0.225
    torch.testing.assert_close(x.flatten(), expected)
    bgr = T.normalize(frames, PreprocessConfig(channel_order="BGR"))
    torch.testing.assert_close(bgr.flatten(), expected.flip(0))


def test_extract_views_from_reader(tmp_path):
    path = make_video(tmp_path / "v.mp4", 50, 64, 48, gop=10, bframes=2)
    cfg = PreprocessConfig(num_frames=4, crop_size=48, num_clips=2, num_crops=3, mean=(0, 0, 0), std=(1, 1, 1))
    reader = open_video(path)
    views = extract_views(reader, cfg)
    assert views.shape == (6, 3, 4, 48, 48)
    for j in range(6):
        wanted = segment_indices(50, 4, j // 3, 2)
        frames = reader.get_frames(wanted)
        ref = T.test_views([frames], cfg)[j % 3]
        torch.testing.assert_close(views[j], ref)
    centre = (views[1].permute(1, 2, 3, 0) * 255).round().clamp(0, 255).to(torch.uint8)
    full = reader.get_frames(segment_indices(50, 4, 0, 2))
    assert [decode_index(f) for f in full] == segment_indices(50, 4, 0, 2)
    assert torch.allclose(centre.float(), full[:, :, 8:56].float(), atol=1)
