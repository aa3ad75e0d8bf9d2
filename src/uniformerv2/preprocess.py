"""How a checkpoint expects its video: frames, sampling, crop size, normalisation and test views.

This travels with the weights (zoo entries, ``config.json``) and is separate from the architecture
config (:class:`uniformerv2.config.UniFormerV2Config`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: Normalisation of every official training run (SlowFast defaults), *not* CLIP's statistics.
OFFICIAL_MEAN = (0.45, 0.45, 0.45)
OFFICIAL_STD = (0.225, 0.225, 0.225)

Sampling = Literal["segment", "dense"]
ChannelOrder = Literal["RGB", "BGR"]


MAX_CLIPS = 1000
"""Most temporal test views (clips) per video: the released protocols use 1 to 4."""


@dataclass
class PreprocessConfig:
    """Input pipeline of a checkpoint (official behaviour §3.3-3.4).

    Attributes:
        num_frames: frames per clip fed to the model (T).
        crop_size: side of the square crop; the short side is resized to it first.
        mean: per-channel mean on the [0, 1] scale, in the model's channel order.
        std: per-channel std on the [0, 1] scale.
        channel_order: "RGB" for video datasets; "BGR" for the official SSv1/SSv2 weights
            (their frames were read with OpenCV and never converted).
        sampling: "segment" (official sparse sampling, one frame per segment) or "dense"
            (``num_frames`` frames ``frame_interval`` apart).
        frame_interval: stride between frames for dense sampling.
        num_clips: temporal views at test time (K).
        num_crops: spatial views at test time (1 = centre, 3 = left/centre/right).
        one_based: frame files are numbered from 1 (SSv1/SSv2 JPEG folders), adds +1 to indices.
    """

    num_frames: int = 8
    crop_size: int = 224
    mean: tuple[float, float, float] = OFFICIAL_MEAN
    std: tuple[float, float, float] = OFFICIAL_STD
    channel_order: ChannelOrder = "RGB"
    sampling: Sampling = "segment"
    frame_interval: int = 1
    num_clips: int = 4
    num_crops: int = 3
    one_based: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if self.sampling not in ("segment", "dense"):
            raise ValueError(f"sampling must be 'segment' or 'dense', got {self.sampling!r}")
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {self.num_crops}")
        if self.num_frames < 1 or self.num_clips < 1 or self.crop_size < 1:
            raise ValueError("num_frames, num_clips and crop_size must be positive")
        if self.num_clips > MAX_CLIPS:
            raise ValueError(f"num_clips must be at most {MAX_CLIPS}, got {self.num_clips}")
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        if not all(math.isfinite(v) for v in self.mean + self.std) or min(self.std) <= 0:
            raise ValueError(f"mean must be finite and std finite and > 0, got mean {self.mean}, std {self.std}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
