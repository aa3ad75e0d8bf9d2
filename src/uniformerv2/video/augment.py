"""Training augmentation of the official pipeline (official behaviour §3.4, "Training").

Per clip: clip-consistent RandAugment ``rand-m7-n4-mstd0.5-inc1`` on uint8 frames at the decoded
resolution -> /255 and normalise -> random resized crop (scale 0.08-1, log-uniform aspect
3/4-4/3, same box for every frame, bilinear align_corners=False on the normalised tensor) ->
horizontal flip with p=0.5 (off for SSv1/SSv2). :class:`TrainTransform` returns several
independently augmented views of the same frames (repeated augmentation, ``AUG.NUM_SAMPLE``).

The RandAugment ops re-state the PIL operations of the official (timm-derived) code in torch, so
they run on CPU or GPU on a whole (T, C, H, W) clip; every random draw (which op, apply or skip,
magnitude, sign) is made once per clip. Pixel values can differ from PIL by rounding.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video.transforms import normalize

__all__ = ["RandAugmentPolicy", "ClipRandAugment", "apply_op", "random_resized_crop", "TrainTransform", "OPS"]

#: The "increasing" op set of ``inc1``, in the official order.
OPS = (
    "AutoContrast",
    "Equalize",
    "Invert",
    "Rotate",
    "PosterizeIncreasing",
    "SolarizeIncreasing",
    "SolarizeAdd",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
)


@dataclass(frozen=True)
class RandAugmentPolicy:
    """RandAugment settings (timm ``rand-m{M}-n{N}-mstd{S}-inc1`` strings).

    Attributes:
        num_ops: ops drawn per clip, uniformly with replacement.
        magnitude: mean magnitude on the 0-10 scale.
        magnitude_std: std of the Gaussian magnitude noise, redrawn for every applied op.
        prob: probability of applying each drawn op.
        fill: grey level of pixels uncovered by geometric ops.
    """

    num_ops: int = 4
    magnitude: float = 7.0
    magnitude_std: float = 0.5
    prob: float = 0.5
    fill: int = 128

    @classmethod
    def from_string(cls, spec: str) -> RandAugmentPolicy:
        """Parse a timm RandAugment string such as ``"rand-m7-n4-mstd0.5-inc1"``.

        Only the increasing op set is implemented, so ``inc1`` is required.
        """
        parts = spec.split("-")
        if parts[0] != "rand":
            raise ValueError(f"not a RandAugment string: {spec!r}")
        values: dict[str, str] = {}
        for part in parts[1:]:
            match = re.fullmatch(r"(mstd|inc|m|n|p)([\d.]+)", part)
            if not match:
                raise ValueError(f"unsupported RandAugment option {part!r} in {spec!r}")
            values[match[1]] = match[2]
        if values.get("inc") != "1":
            raise ValueError(f"only the increasing op set (inc1) is implemented: {spec!r}")
        return cls(
            num_ops=int(values.get("n", 2)),
            magnitude=float(values.get("m", 9)),
            magnitude_std=float(values.get("mstd", 0)),
            prob=float(values.get("p", 0.5)),
        )


# -- level (magnitude) to argument, as timm's _LEVEL_TO_ARG with level in [0, 10] -------------


def _negate(value: float, rng: random.Random) -> float:
    return -value if rng.random() > 0.5 else value


_LEVEL_TO_ARG: dict[str, Callable[[float, random.Random], float | None]] = {
    "AutoContrast": lambda m, r: None,
    "Equalize": lambda m, r: None,
    "Invert": lambda m, r: None,
    "Rotate": lambda m, r: _negate(m / 10 * 30, r),
    "PosterizeIncreasing": lambda m, r: 4 - int(m / 10 * 4),
    "SolarizeIncreasing": lambda m, r: 256 - int(m / 10 * 256),
    "SolarizeAdd": lambda m, r: int(m / 10 * 110),
    "ColorIncreasing": lambda m, r: 1.0 + _negate(m / 10 * 0.9, r),
    "ContrastIncreasing": lambda m, r: 1.0 + _negate(m / 10 * 0.9, r),
    "BrightnessIncreasing": lambda m, r: 1.0 + _negate(m / 10 * 0.9, r),
    "SharpnessIncreasing": lambda m, r: 1.0 + _negate(m / 10 * 0.9, r),
    "ShearX": lambda m, r: _negate(m / 10 * 0.3, r),
    "ShearY": lambda m, r: _negate(m / 10 * 0.3, r),
    "TranslateXRel": lambda m, r: _negate(m / 10 * 0.45, r),
    "TranslateYRel": lambda m, r: _negate(m / 10 * 0.45, r),
}


# -- the ops, on uint8 (T, C, H, W) -------------------------------------------------------------


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Clamp and truncate like PIL's 8-bit blends."""
    return x.clamp_(0, 255).to(torch.uint8)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """PIL "L" conversion, (T, 1, H, W) int: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
    r, g, b = x.long().unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 32768) >> 16).unsqueeze(1)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL ``Image.blend(degenerate, x, factor)``."""
    d = degenerate.float()
    return _to_uint8(d + factor * (x.float() - d))


def _lut_per_channel(x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Apply one 256-entry table per (frame, channel): ``lut`` is (T, C, 256)."""
    t, c, h, w = x.shape
    flat = x.reshape(t * c, h * w).long()
    return lut.reshape(t * c, 256).gather(1, flat).reshape(t, c, h, w).to(torch.uint8)


def _histogram(x: torch.Tensor) -> torch.Tensor:
    """(T, C, 256) per-frame per-channel histograms."""
    t, c = x.shape[:2]
    rows = torch.arange(t * c, device=x.device).unsqueeze(1) * 256
    flat = (x.reshape(t * c, -1).long() + rows).flatten()
    return torch.bincount(flat, minlength=t * c * 256).reshape(t, c, 256)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageOps.autocontrast`` (cutoff 0), per frame and channel."""
    lo = x.amin(dim=(2, 3), keepdim=True).float()
    hi = x.amax(dim=(2, 3), keepdim=True).float()
    scale = torch.where(hi > lo, 255.0 / (hi - lo).clamp(min=1), torch.ones_like(lo))
    offset = torch.where(hi > lo, -lo * scale, torch.zeros_like(lo))
    return _to_uint8(torch.floor(x.float() * scale + offset))


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageOps.equalize``, per frame and channel."""
    hist = _histogram(x)
    last = torch.where(hist > 0, torch.arange(256, device=x.device), -1).amax(-1, keepdim=True)
    last_count = hist.gather(-1, last.clamp(min=0))
    step = (hist.sum(-1, keepdim=True) - last_count) // 255
    before = torch.cumsum(hist, -1) - hist
    lut = ((step // 2 + before) // step.clamp(min=1)).clamp(max=255)
    identity = torch.arange(256, device=x.device).expand_as(lut)
    lut = torch.where(step > 0, lut, identity)
    return _lut_per_channel(x, lut)


def _affine(x: torch.Tensor, matrix: tuple[float, ...], fill: int) -> torch.Tensor:
    """PIL ``Image.transform(AFFINE, matrix, BICUBIC, fillcolor=fill)``.

    ``matrix`` (a, b, c, d, e, f) maps an output pixel centre (x, y) to the input point
    (a x + b y + c, d x + e y + f), in pixel units.
    """
    t, _, h, w = x.shape
    a, b, c, d, e, f = matrix
    ys = torch.arange(h, device=x.device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=x.device, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack((2 * (a * gx + b * gy + c) / w - 1, 2 * (d * gx + e * gy + f) / h - 1), dim=-1)
    shifted = x.float() - fill
    out = F.grid_sample(shifted, grid.expand(t, h, w, 2), mode="bicubic", padding_mode="zeros", align_corners=False)
    return _to_uint8((out + fill).round_())


def _rotate_matrix(degrees: float, h: int, w: int) -> tuple[float, ...]:
    """PIL ``Image.rotate`` (counter-clockwise about the centre) as an output->input matrix."""
    angle = -math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = w / 2, h / 2
    return (cos, sin, cos * -cx + sin * -cy + cx, -sin, cos, -sin * -cx + cos * -cy + cy)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageFilter.SMOOTH`` (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, /13); borders unchanged."""
    t, c, h, w = x.shape
    kernel = torch.ones(3, 3, device=x.device)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(c, 1, 3, 3)
    inner = F.conv2d(x.float(), kernel, groups=c).round_()
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = _to_uint8(inner)
    return out


def apply_op(frames: torch.Tensor, name: str, arg: float | None, fill: int = 128) -> torch.Tensor:
    """Apply one RandAugment op with a fixed argument to every frame.

    Args:
        frames: (T, 3, H, W) uint8.
        name: one of :data:`OPS`.
        arg: the op's argument (degrees, bits, threshold, factor, shear, or fraction of the
            image size for translations), as made by the level functions.
        fill: grey level for pixels uncovered by geometric ops.

    Returns:
        (T, 3, H, W) uint8.
    """
    x = frames
    h, w = x.shape[-2:]
    if name == "AutoContrast":
        return _autocontrast(x)
    if name == "Equalize":
        return _equalize(x)
    if name == "Invert":
        return 255 - x
    if arg is None:
        raise ValueError(f"op {name!r} needs an argument")
    if name == "PosterizeIncreasing":
        bits = int(arg)
        return x if bits >= 8 else x & (~(2 ** (8 - bits) - 1) & 0xFF)
    if name == "SolarizeIncreasing":
        return torch.where(x.int() < int(arg), x, 255 - x)
    if name == "SolarizeAdd":
        return torch.where(x < 128, (x.int() + int(arg)).clamp(max=255).to(torch.uint8), x)
    if name == "ColorIncreasing":
        return _blend(_grey(x).expand_as(x), x, arg)
    if name == "ContrastIncreasing":
        mean = (_grey(x).float().mean(dim=(1, 2, 3), keepdim=True) + 0.5).floor()
        return _blend(mean.expand_as(x), x, arg)
    if name == "BrightnessIncreasing":
        return _blend(torch.zeros_like(x), x, arg)
    if name == "SharpnessIncreasing":
        return _blend(_smooth(x), x, arg)
    geometric = {
        "Rotate": lambda: _rotate_matrix(arg, h, w),
        "ShearX": lambda: (1, arg, 0, 0, 1, 0),
        "ShearY": lambda: (1, 0, 0, arg, 1, 0),
        "TranslateXRel": lambda: (1, 0, arg * w, 0, 1, 0),
        "TranslateYRel": lambda: (1, 0, 0, 0, 1, arg * h),
    }
    if name not in geometric:
        raise ValueError(f"unknown op {name!r}; expected one of {OPS}")
    return _affine(x, geometric[name](), fill)


class ClipRandAugment:
    """RandAugment with one set of random draws per clip (official ``_aug_frame``, §3.4).

    Args:
        policy: the settings; ``rand-m7-n4-mstd0.5-inc1`` (every official config) by default.
    """

    def __init__(self, policy: RandAugmentPolicy | str = RandAugmentPolicy()) -> None:
        self.policy = RandAugmentPolicy.from_string(policy) if isinstance(policy, str) else policy

    def sample(self, rng: random.Random) -> list[tuple[str, float | None]]:
        """Draw the ops of one clip: (name, argument) for each op that will be applied."""
        p = self.policy
        chosen = rng.choices(OPS, k=p.num_ops)
        plan = []
        for name in chosen:
            if p.prob < 1.0 and rng.random() > p.prob:
                continue
            magnitude = rng.gauss(p.magnitude, p.magnitude_std) if p.magnitude_std > 0 else p.magnitude
            magnitude = max(0.0, min(10.0, magnitude))
            plan.append((name, _LEVEL_TO_ARG[name](magnitude, rng)))
        return plan

    def __call__(self, frames: torch.Tensor, rng: random.Random | None = None) -> torch.Tensor:
        """Augment a clip.

        Args:
            frames: (T, 3, H, W) uint8 on any device.
            rng: source of the draws; a fresh unseeded ``random.Random`` when None.

        Returns:
            (T, 3, H, W) uint8.
        """
        for name, arg in self.sample(rng or random.Random()):
            frames = apply_op(frames, name, arg, self.policy.fill)
        return frames


def _crop_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], rng: random.Random
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the official ``_get_param_spatial_crop`` (10 tries, centre fallback)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(
    x: torch.Tensor,
    size: int,
    rng: random.Random,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (0.75, 1.3333),
) -> torch.Tensor:
    """Official ``random_resized_crop``: one box for all frames, resized to size x size.

    Args:
        x: (C, T, H, W) float (already normalised, as official).
        size: output side.
        rng: source of the draws.
        scale: range of the crop area as a fraction of the frame.
        ratio: range of the aspect ratio w / h, sampled log-uniformly.

    Returns:
        (C, T, size, size) float; bilinear, align_corners=False, no antialias.
    """
    top, left, h, w = _crop_box(x.shape[-2], x.shape[-1], scale, ratio, rng)
    crop = x[..., top : top + h, left : left + w]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)


class TrainTransform:
    """Official training augmentation of one decoded clip, optionally repeated (§3.4).

    Args:
        cfg: crop size, normalisation and channel order (BGR configs flip channels before
            RandAugment, as the official SSv1/SSv2 pipeline saw BGR frames).
        num_samples: independently augmented views of the same frames (``AUG.NUM_SAMPLE``:
            1 for Kinetics-style data, 2 for SSv1/SSv2).
        auto_augment: RandAugment string, or None to disable it.
        scale: random resized crop area range.
        ratio: random resized crop aspect range.
        flip: horizontal flip with p=0.5 (official: on, except SSv1/SSv2).
    """

    def __init__(
        self,
        cfg: PreprocessConfig,
        num_samples: int = 1,
        *,
        auto_augment: str | None = "rand-m7-n4-mstd0.5-inc1",
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (0.75, 1.3333),
        flip: bool = True,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.cfg = cfg
        self.num_samples = num_samples
        self.rand_augment = ClipRandAugment(auto_augment) if auto_augment else None
        self.scale, self.ratio, self.flip = scale, ratio, flip

    def __call__(self, frames: torch.Tensor, rng: random.Random | None = None) -> torch.Tensor:
        """Augment a clip ``num_samples`` times.

        Args:
            frames: (T, H, W, 3) uint8 RGB, on any device.
            rng: source of every random draw; a fresh unseeded ``random.Random`` when None.

        Returns:
            (num_samples, 3, T, S, S) float32, S = ``cfg.crop_size``.
        """
        rng = rng or random.Random()
        return torch.stack([self._one(frames, rng) for _ in range(self.num_samples)])

    def _one(self, frames: torch.Tensor, rng: random.Random) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2)  # T, C, H, W
        if self.cfg.channel_order == "BGR":
            x = x.flip(1)
        if self.rand_augment is not None:
            x = self.rand_augment(x, rng)
        # normalize() takes RGB (T, H, W, 3) and applies the channel order itself: undo the flip.
        rgb = x.flip(1) if self.cfg.channel_order == "BGR" else x
        y = normalize(rgb.permute(0, 2, 3, 1), self.cfg)
        y = random_resized_crop(y, self.cfg.crop_size, rng, self.scale, self.ratio)
        if self.flip and rng.random() < 0.5:
            y = y.flip(-1)
        return y
