"""Test-time preprocessing identical to the official pipeline (official behaviour §3.4, "Test").

Order: uint8 RGB frames -> channel order of the checkpoint -> /255 -> (x - mean) / std ->
short side resized to ``crop_size`` (bilinear, align_corners=False, no antialias, on the
normalised float tensor) -> ``uniform_crop``. Frames go in as (T, H, W, 3) uint8 and views come
out as (3, T, S, S) float32, S = ``crop_size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video.decode import VideoReader
from uniformerv2.video.sampling import sample_indices, union_indices

__all__ = ["normalize", "short_side_resize", "uniform_crop", "test_views", "val_transform", "extract_views"]


def normalize(frames: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """uint8 RGB frames to the normalised float layout of the model (official ``tensor_normalize``).

    For ``cfg.channel_order == "BGR"`` (official SSv1/SSv2 weights) the channels are reversed
    first, as the official OpenCV decoding produced BGR.

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        cfg: mean, std and channel order.

    Returns:
        (3, T, H, W) float32, (x / 255 - mean) / std.
    """
    x = frames.permute(3, 0, 1, 2).float().div_(255.0)
    if cfg.channel_order == "BGR":
        x = x.flip(0)
    mean = torch.tensor(cfg.mean, dtype=x.dtype, device=x.device).view(3, 1, 1, 1)
    std = torch.tensor(cfg.std, dtype=x.dtype, device=x.device).view(3, 1, 1, 1)
    return x.sub_(mean).div_(std)


def short_side_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the short side equals ``size`` (official ``random_short_side_scale_jitter``
    with min = max = size).

    The long side becomes floor(long / short * size) (320x240 -> 298x224); bilinear,
    align_corners=False, no antialias; nothing happens when the short side already equals size.

    Args:
        x: (C, T, H, W) float.
        size: target short side.

    Returns:
        (C, T, H', W') float.
    """
    height, width = x.shape[-2:]
    if (width <= height and width == size) or (height <= width and height == size):
        return x
    if width < height:
        new_h, new_w = int(math.floor(height / width * size)), size
    else:
        new_h, new_w = size, int(math.floor(width / height * size))
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)


def uniform_crop(x: torch.Tensor, size: int, spatial_idx: int) -> torch.Tensor:
    """Square crop at one of three positions along the long side (official ``uniform_crop``).

    Offsets default to the centre, y = ceil((H - size) / 2), x = ceil((W - size) / 2). If H > W,
    index 0 takes the top and 2 the bottom; otherwise 0 the left and 2 the right; 1 is the centre.

    Args:
        x: (C, T, H, W) with H, W >= size.
        size: crop side.
        spatial_idx: 0, 1 or 2.

    Returns:
        (C, T, size, size).
    """
    if spatial_idx not in (0, 1, 2):
        raise ValueError(f"spatial_idx must be 0, 1 or 2, got {spatial_idx}")
    height, width = x.shape[-2:]
    y_off = int(math.ceil((height - size) / 2))
    x_off = int(math.ceil((width - size) / 2))
    if height > width:
        y_off = {0: 0, 1: y_off, 2: height - size}[spatial_idx]
    else:
        x_off = {0: 0, 1: x_off, 2: width - size}[spatial_idx]
    return x[..., y_off : y_off + size, x_off : x_off + size]


def _crop_indices(num_crops: int) -> list[int]:
    return [1] if num_crops == 1 else list(range(num_crops))


def test_views(
    frames_per_clip: Sequence[torch.Tensor], cfg: PreprocessConfig, num_crops: int | None = None
) -> torch.Tensor:
    """All test views of one video (official multi-view test, §3.4).

    Views are clip-major: view j is temporal clip j // S with spatial crop j % S; with one crop
    (S = 1) the crop is the centre.

    Args:
        frames_per_clip: per temporal clip, (T, H, W, 3) uint8 RGB frames.
        cfg: normalisation, channel order and crop size.
        num_crops: spatial crops S (1 or 3); ``cfg.num_crops`` when None.

    Returns:
        (V, 3, T, S, S) float32 with V = len(frames_per_clip) * num_crops.
    """
    crops = cfg.num_crops if num_crops is None else num_crops
    views: list[torch.Tensor] = []
    for frames in frames_per_clip:
        x = short_side_resize(normalize(frames, cfg), cfg.crop_size)
        views.extend(uniform_crop(x, cfg.crop_size, s) for s in _crop_indices(crops))
    return torch.stack(views)


def val_transform(frames: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """Validation view: one clip, short side resize and centre crop (official val mode, §3.4).

    Args:
        frames: (T, H, W, 3) uint8 RGB frames of the clip (temporal index 0 of K = 1).
        cfg: normalisation, channel order and crop size.

    Returns:
        (3, T, S, S) float32.
    """
    return test_views([frames], cfg, num_crops=1)[0]


def extract_views(
    reader: VideoReader,
    cfg: PreprocessConfig,
    *,
    num_clips: int | None = None,
    num_crops: int | None = None,
) -> torch.Tensor:
    """Decode and preprocess every test view of a video, decoding each frame once.

    Args:
        reader: an open video.
        cfg: sampling (§3.3) and spatial (§3.4) settings.
        num_clips: temporal views K; ``cfg.num_clips`` when None.
        num_crops: spatial views S; ``cfg.num_crops`` when None.

    Returns:
        (K * S, 3, T, S, S) float32, clip-major.
    """
    clips = cfg.num_clips if num_clips is None else num_clips
    per_clip = [sample_indices(reader.num_frames, cfg, k, num_clips=clips, one_based=False) for k in range(clips)]
    unique, where = union_indices(per_clip)
    decoded = reader.get_frames(unique)
    return test_views([decoded[pos] for pos in where], cfg, num_crops=num_crops)


test_views.__test__ = False  # type: ignore[attr-defined]  # the name starts with "test": keep pytest from collecting it
