"""Test-time preprocessing identical to the official pipeline (official behaviour §3.4, "Test").

Order: uint8 RGB frames -> channel order of the checkpoint -> /255 -> (x - mean) / std ->
short side resized to ``crop_size`` (bilinear, align_corners=False, no antialias, on the
normalised float tensor) -> ``uniform_crop``. Frames go in as (T, H, W, 3) uint8 and views come
out as (3, T, S, S) float32, S = ``crop_size``.

:func:`crop_views` runs the three steps with memory bounded by the output: frames of extreme
aspect ratio (a 1 x 1000 frame would be resized to 224 x 224000) are cropped before they are
resized. :func:`normalize`, :func:`short_side_resize` and :func:`uniform_crop` are the official
steps one by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video.decode import VideoReader
from uniformerv2.video.sampling import sample_indices, union_indices

__all__ = [
    "normalize",
    "short_side_resize",
    "uniform_crop",
    "crop_views",
    "test_views",
    "val_transform",
    "extract_views",
]


#: Longest resized side, in crops, for which the full frame is resized (official steps as they are).
FULL_RESIZE_LIMIT = 4


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
    new_h, new_w = _resized_size(height, width, size)
    if (new_h, new_w) == (height, width):
        return x
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)


def _resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) after the official short side resize; unchanged when the short side is ``size``."""
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(math.floor(height / width * size)), size
    return size, int(math.floor(width / height * size))


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
    y_off, x_off = _crop_offsets(x.shape[-2], x.shape[-1], size, spatial_idx)
    return x[..., y_off : y_off + size, x_off : x_off + size]


def _crop_offsets(height: int, width: int, size: int, spatial_idx: int) -> tuple[int, int]:
    """(y, x) of the top left corner of :func:`uniform_crop`'s square."""
    if spatial_idx not in (0, 1, 2):
        raise ValueError(f"spatial_idx must be 0, 1 or 2, got {spatial_idx}")
    y_off = int(math.ceil((height - size) / 2))
    x_off = int(math.ceil((width - size) / 2))
    if height > width:
        y_off = {0: 0, 1: y_off, 2: height - size}[spatial_idx]
    else:
        x_off = {0: 0, 1: x_off, 2: width - size}[spatial_idx]
    return y_off, x_off


def _linear_taps(in_size: int, out_size: int, start: int, count: int) -> tuple[torch.Tensor, ...]:
    """Source indices and weights of output pixels ``start .. start + count - 1`` of a bilinear
    resize from ``in_size`` to ``out_size`` (align_corners=False), computed as PyTorch's CPU
    kernel does: scale = in / out in float32, source = scale * (o + 0.5) - 0.5 (fused), clamped
    at 0; index0 = floor(source) (at most in - 1), index1 = index0 + 1 (at most in - 1),
    lambda1 = source - index0, lambda0 = 1 - lambda1.

    Returns:
        (index0, index1, lambda0, lambda1), each of length ``count``.
    """
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    dst = torch.arange(start, start + count, dtype=torch.float32) + 0.5
    # the float32 product is exact in float64: one rounding, as the kernel's fused multiply-add
    source = (scale.double() * dst.double() - 0.5).float().clamp_(min=0)
    index0 = source.floor().long().clamp_(max=in_size - 1)
    index1 = (index0 + 1).clamp_(max=in_size - 1)
    lambda1 = (source - index0.float()).clamp_(0, 1)
    return index0, index1, 1 - lambda1, lambda1


def crop_views(frames: torch.Tensor, cfg: PreprocessConfig, spatial_ids: Sequence[int]) -> torch.Tensor:
    """``uniform_crop(short_side_resize(normalize(frames)))`` at each spatial index, in memory
    bounded by the output.

    Frames whose resized long side is at most :data:`FULL_RESIZE_LIMIT` times the crop (every
    ordinary aspect ratio, 32:9 included) follow the official steps exactly. Longer ones (a
    1 x 1000 clip would be resized to 224 x 224000) are cropped first: only the source pixels of
    the crop are normalised and blended with the bilinear weights of the full resize, which
    equals the official result within float32 rounding.

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        cfg: normalisation, channel order and crop size S.
        spatial_ids: crop positions (0, 1, 2: start, centre, end of the long side).

    Returns:
        (len(spatial_ids), 3, T, S, S) float32.
    """
    size = cfg.crop_size
    if max(_resized_size(frames.shape[1], frames.shape[2], size)) <= FULL_RESIZE_LIMIT * size:
        x = short_side_resize(normalize(frames, cfg), size)
        return torch.stack([uniform_crop(x, size, s) for s in spatial_ids])
    return _crop_then_resize(frames, cfg, spatial_ids)


def _crop_then_resize(frames: torch.Tensor, cfg: PreprocessConfig, spatial_ids: Sequence[int]) -> torch.Tensor:
    """:func:`crop_views` computing only the cropped output pixels (see there)."""
    size = cfg.crop_size
    height, width = frames.shape[1:3]
    new_h, new_w = _resized_size(height, width, size)
    views = []
    for spatial_idx in spatial_ids:
        y_off, x_off = _crop_offsets(new_h, new_w, size, spatial_idx)
        if (new_h, new_w) == (height, width):
            views.append(normalize(frames[:, y_off : y_off + size, x_off : x_off + size], cfg))
            continue
        rows0, rows1, h0, h1 = _linear_taps(height, new_h, y_off, size)
        cols0, cols1, w0, w1 = _linear_taps(width, new_w, x_off, size)

        def pixels(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:  # (3, T, S, S), normalised
            return normalize(frames[:, rows[:, None], cols[None, :]], cfg)

        top = pixels(rows0, cols0) * w0 + pixels(rows0, cols1) * w1
        bottom = pixels(rows1, cols0) * w0 + pixels(rows1, cols1) * w1
        views.append(top * h0[:, None] + bottom * h1[:, None])
    return torch.stack(views)


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
    return torch.cat([crop_views(frames, cfg, _crop_indices(crops)) for frames in frames_per_clip])


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
