"""Frame-index rules as pure functions (official behaviour §3.3).

All functions return 0-based frame indices into a video of ``num_frames`` frames, unless
``one_based`` is set (SSv1/SSv2 JPEG folders, whose files are numbered from 1).

Short videos: when a video has fewer frames than the clip needs, indices repeat (segment
sampling) or are clamped to the last frame (dense sampling). This is the official policy; no
frame is invented and no video is rejected for being short.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from uniformerv2.preprocess import PreprocessConfig

__all__ = ["segment_indices", "dense_indices", "sample_indices"]


class _RandInt(Protocol):
    def randint(self, a: int, b: int) -> int: ...


def _check_clip(clip_idx: int, num_clips: int) -> None:
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if not (clip_idx == -1 or 0 <= clip_idx < num_clips):
        raise ValueError(f"clip_idx must be -1 (train) or in [0, {num_clips}), got {clip_idx}")


def segment_indices(
    num_frames: int,
    num_segments: int,
    clip_idx: int = -1,
    num_clips: int = 1,
    *,
    rng: random.Random | None = None,
    one_based: bool = False,
) -> list[int]:
    """Segment-based sparse sampling: one frame per segment (official ``get_seq_frames``, §3.3).

    With N = ``num_frames``, T = ``num_segments``, K = ``num_clips`` and k = ``clip_idx``:

    - seg = max(0, (N - 1) / T)
    - train (k = -1): s_i = round(seg·i), e_i = round(seg·(i + 1)) and
      idx_i = min(randint(s_i, e_i), N - 1), ``randint`` inclusive at both ends;
    - test (0 <= k < K): duration = seg / (K + 1) and
      idx_i = min(round(seg·i) + int(duration·(k + 1)), N - 1).

    ``round`` is round-half-to-even (numpy's and Python's), ``int`` truncates. With N=300, T=8
    clip 0 of 4 gives [7, 44, 82, 119, 157, 194, 231, 269]. Short videos repeat indices
    (N=5, T=8 test gives [0, 0, 1, 2, 2, 2, 3, 4]).

    Args:
        num_frames: frames in the video (N >= 1).
        num_segments: frames to sample (T >= 1).
        clip_idx: -1 for random training sampling, otherwise the temporal view k.
        num_clips: number of temporal views K (test time).
        rng: source of randomness for training; the ``random`` module when None (as official).
        one_based: add 1 to every index (SSv1/SSv2 frame files).

    Returns:
        T non-decreasing frame indices.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    _check_clip(clip_idx, num_clips)
    seg = max(0.0, (num_frames - 1) / num_segments)
    last = num_frames - 1
    if clip_idx == -1:
        draw: _RandInt = rng if rng is not None else random
        starts_ends = ((round(seg * i), round(seg * (i + 1))) for i in range(num_segments))
        indices = [min(draw.randint(s, e), last) for s, e in starts_ends]
    else:
        offset = int(seg / (num_clips + 1) * (clip_idx + 1))
        indices = [min(round(seg * i) + offset, last) for i in range(num_segments)]
    return [i + 1 for i in indices] if one_based else indices


def dense_indices(
    num_frames: int,
    clip_len: int,
    frame_interval: int = 1,
    clip_idx: int = -1,
    num_clips: int = 1,
    *,
    rng: random.Random | None = None,
    one_based: bool = False,
) -> list[int]:
    """Dense sampling: ``clip_len`` frames ``frame_interval`` apart (SlowFast offset rule, §3.2).

    The clip covers clip_size = clip_len·frame_interval frames and starts at
    start = randint(0, delta) in training, start = k·floor(delta / (K - 1)) for test clip k of
    K > 1, and start = floor(delta / 2) (the centre) for K = 1, with delta = max(N - clip_size, 0).
    idx_i = min(start + i·frame_interval, N - 1): a video shorter than the clip repeats its last
    frame.

    Args:
        num_frames: frames in the video (N >= 1).
        clip_len: frames to sample.
        frame_interval: stride between sampled frames (>= 1).
        clip_idx: -1 for a random start, otherwise the temporal view k.
        num_clips: number of temporal views K.
        rng: source of randomness for training; the ``random`` module when None.
        one_based: add 1 to every index.

    Returns:
        ``clip_len`` non-decreasing frame indices.
    """
    if num_frames < 1 or clip_len < 1 or frame_interval < 1:
        raise ValueError("num_frames, clip_len and frame_interval must be >= 1")
    _check_clip(clip_idx, num_clips)
    delta = max(num_frames - clip_len * frame_interval, 0)
    if clip_idx == -1:
        draw: _RandInt = rng if rng is not None else random
        start = draw.randint(0, delta)
    elif num_clips == 1:
        start = delta // 2
    else:
        start = clip_idx * (delta // (num_clips - 1))
    indices = [min(start + i * frame_interval, num_frames - 1) for i in range(clip_len)]
    return [i + 1 for i in indices] if one_based else indices


def sample_indices(
    num_frames: int,
    cfg: PreprocessConfig,
    clip_idx: int = -1,
    rng: random.Random | None = None,
    *,
    num_clips: int | None = None,
    one_based: bool | None = None,
) -> list[int]:
    """Frame indices of one clip as a checkpoint's :class:`PreprocessConfig` asks (§3.3).

    Args:
        num_frames: frames in the video.
        cfg: ``cfg.sampling`` picks :func:`segment_indices` or :func:`dense_indices`;
            ``cfg.num_frames`` is the clip length.
        clip_idx: -1 for training, otherwise the temporal view k.
        rng: source of randomness for training.
        num_clips: number of temporal views K; ``cfg.num_clips`` when None. Validation uses 1.
        one_based: overrides ``cfg.one_based`` (readers of this package always take 0-based
            indices, so pass False when the result goes to a reader).

    Returns:
        ``cfg.num_frames`` frame indices.
    """
    clips = cfg.num_clips if num_clips is None else num_clips
    base1 = cfg.one_based if one_based is None else one_based
    if cfg.sampling == "segment":
        return segment_indices(num_frames, cfg.num_frames, clip_idx, clips, rng=rng, one_based=base1)
    return dense_indices(num_frames, cfg.num_frames, cfg.frame_interval, clip_idx, clips, rng=rng, one_based=base1)


def union_indices(clips: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Unique sorted indices of several clips, and each clip's positions in that list.

    Args:
        clips: frame indices per clip.

    Returns:
        (unique sorted indices, per clip the position of each of its indices in the first list).
    """
    unique = sorted({i for clip in clips for i in clip})
    where = {idx: pos for pos, idx in enumerate(unique)}
    return unique, [[where[i] for i in clip] for clip in clips]
