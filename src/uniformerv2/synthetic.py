"""Synthetic videos whose classes differ only in temporal order: a check that a model learns time.

Two tasks, two classes each. Every video draws its own random parameters (object shape, size,
colour, position, speed, background colours and gradient, pixel-noise level) and renders one
*forward* clip; class 0 is that clip, class 1 is the same clip played backwards. The object is
always at least 70 luma levels brighter than the background: with a random contrast sign the
label would be the product of the motion's sign and the contrast's sign, which a small network
trained from scratch needs many times more steps to find.

- ``direction``: an object moves left -> right (class 0, ``left_to_right``) or the same clip
  reversed, right -> left (class 1, ``right_to_left``).
- ``approach``: an object grows, approaching the camera (class 0, ``approaching``) or the same clip
  reversed, shrinking (class 1, ``receding``).

The set of frames of a video never tells its class: a model that ignores frame order (one that
averages per-frame features, or one trained on frames in shuffled order) can reach only chance,
50 %. ``time_order="shuffled"`` writes the same videos with their frames in a random order: the
time-shuffled control of the same training.

Everything is deterministic per ``seed``: video i draws from ``numpy.random.default_rng((seed, i))``
whatever ``num_videos`` is, and the encoded files are bit-identical. Videos are H.264 mp4 (libx264,
4:2:0), written atomically, with ``train.csv`` / ``val.csv`` (``path,label``, paths
relative to the output directory, the ``video`` list format of :mod:`uniformerv2.train.data`) and
``labels.txt`` (one class name per line, in label order).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av
import numpy as np
from tqdm.auto import tqdm

from uniformerv2.atomic import atomic_write, atomic_write_text
from uniformerv2.errors import UniFormerV2Error

if TYPE_CHECKING:
    from uniformerv2.train.config import TrainConfig

__all__ = [
    "TASKS",
    "ClipParams",
    "SyntheticDataError",
    "SyntheticSet",
    "make_synthetic",
    "render_forward",
    "sample_params",
    "synthetic_clip",
    "write_mp4",
    "LEARNS_TIME_MODELS",
    "learns_time_config",
]

TimeOrder = Literal["natural", "shuffled"]

#: Class names of each task, in label order (class 1 is class 0 played backwards).
TASKS: dict[str, tuple[str, str]] = {
    "direction": ("left_to_right", "right_to_left"),
    "approach": ("approaching", "receding"),
}
_FPS = 8


class SyntheticDataError(UniFormerV2Error, ValueError):
    """Settings that cannot make a synthetic data set (too few videos, odd frame size, ...)."""


@dataclass(frozen=True)
class ClipParams:
    """The random parameters of one video; :func:`render_forward` turns them into frames.

    Positions and sizes are in pixels of a ``size`` x ``size`` frame; colours are RGB in [0, 255].

    Attributes:
        task: ``"direction"`` or ``"approach"``.
        frames: frames of the clip F.
        size: frame side S.
        shape: ``"disc"`` or ``"square"``.
        start: object centre (x, y) in the first forward frame.
        end: object centre (x, y) in the last forward frame.
        radius: object radius (half side of a square) in the first and the last forward frame.
        color: object colour.
        background: background colours at the two ends of a linear gradient.
        gradient_angle: direction of the background gradient, radians.
        noise: standard deviation of the Gaussian pixel noise added to every frame.
        noise_seed: seed of that noise (drawn once per video, so a reversed clip reverses it too).
        order_seed: seed of the frame permutation of ``time_order="shuffled"``.
    """

    task: str
    frames: int
    size: int
    shape: str
    start: tuple[float, float]
    end: tuple[float, float]
    radius: tuple[float, float]
    color: tuple[float, float, float]
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    gradient_angle: float
    noise: float
    noise_seed: int
    order_seed: int


@dataclass(frozen=True)
class SyntheticSet:
    """What :func:`make_synthetic` wrote.

    Attributes:
        root: the output directory; list paths are relative to it (``data.root`` of training).
        train_list: ``train.csv``.
        val_list: ``val.csv``.
        labels_file: ``labels.txt``.
        num_train: videos in ``train.csv``.
        num_val: videos in ``val.csv``.
    """

    root: Path
    train_list: Path
    val_list: Path
    labels_file: Path
    num_train: int
    num_val: int


_LUMA = np.array([0.299, 0.587, 0.114])


def _colours(rng: np.random.Generator, min_gap: float = 70.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An object colour and two background colours (the gradient's ends), both at least
    ``min_gap`` darker in luma than the object."""
    while True:
        obj, bg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        bg2 = np.clip(bg + rng.uniform(-40, 40, 3), 0, 255)
        if min(_LUMA @ (obj - bg), _LUMA @ (obj - bg2)) >= min_gap:
            return obj, bg, bg2


def sample_params(task: str, index: int, seed: int = 0, frames: int = 16, size: int = 64) -> ClipParams:
    """The random parameters of video ``index`` (deterministic in ``(seed, index)``)."""
    if task not in TASKS:
        raise SyntheticDataError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    rng = np.random.default_rng((seed, index))
    color, bg, bg2 = _colours(rng)
    s = float(size)
    if task == "direction":
        r = rng.uniform(0.08, 0.14) * s
        travel = rng.uniform(0.35, 0.65) * s
        x0 = rng.uniform(r, s - r - travel)
        y0 = rng.uniform(r, s - r)
        y1 = float(np.clip(y0 + rng.uniform(-0.1, 0.1) * s, r, s - r))
        start, end, radius = (x0, y0), (x0 + travel, y1), (r, r)
    else:
        r0 = rng.uniform(0.05, 0.1) * s
        r1 = min(r0 * rng.uniform(2.2, 3.5), 0.38 * s)
        cx, cy = rng.uniform(0.35, 0.65, 2) * s
        drift = rng.uniform(-0.05, 0.05, 2) * s
        start, end, radius = (cx, cy), (cx + drift[0], cy + drift[1]), (r0, r1)
    return ClipParams(
        task=task,
        frames=frames,
        size=size,
        shape=str(rng.choice(["disc", "square"])),
        start=(float(start[0]), float(start[1])),
        end=(float(end[0]), float(end[1])),
        radius=(float(radius[0]), float(radius[1])),
        color=tuple(float(c) for c in color),  # type: ignore[arg-type]
        background=(tuple(float(c) for c in bg), tuple(float(c) for c in bg2)),  # type: ignore[arg-type]
        gradient_angle=float(rng.uniform(0, 2 * np.pi)),
        noise=float(rng.uniform(0, 12)),
        noise_seed=int(rng.integers(2**31)),
        order_seed=int(rng.integers(2**31)),
    )


def _coverage(p: ClipParams, centre: np.ndarray, radius: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(S, S) in [0, 1]: how much of each pixel the object covers (1-pixel soft edge, sub-pixel motion)."""
    dx, dy = xs - centre[0], ys - centre[1]
    dist = np.hypot(dx, dy) if p.shape == "disc" else np.maximum(np.abs(dx), np.abs(dy))
    return np.clip(radius + 0.5 - dist, 0.0, 1.0)


def render_forward(p: ClipParams) -> np.ndarray:
    """The forward clip (class 0) of ``p``: (F, S, S, 3) uint8 RGB, the object moving from
    ``p.start`` to ``p.end`` at constant speed while its radius goes linearly from
    ``p.radius[0]`` to ``p.radius[1]``."""
    ys, xs = np.mgrid[0 : p.size, 0 : p.size].astype(np.float64) + 0.5
    u = (np.cos(p.gradient_angle) * xs + np.sin(p.gradient_angle) * ys) / p.size
    u = (u - u.min()) / max(float(np.ptp(u)), 1e-9)
    bg0, bg1 = (np.asarray(c) for c in p.background)
    background = bg0 * (1 - u[..., None]) + bg1 * u[..., None]
    noise = np.random.default_rng(p.noise_seed).normal(0.0, p.noise, (p.frames, p.size, p.size, 3))
    out = np.empty((p.frames, p.size, p.size, 3), np.uint8)
    start, end = np.asarray(p.start), np.asarray(p.end)
    for t in range(p.frames):
        a = t / max(p.frames - 1, 1)
        cover = _coverage(p, start + a * (end - start), p.radius[0] + a * (p.radius[1] - p.radius[0]), xs, ys)
        frame = background * (1 - cover[..., None]) + np.asarray(p.color) * cover[..., None] + noise[t]
        out[t] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return out


def synthetic_clip(p: ClipParams, label: int, time_order: TimeOrder = "natural") -> np.ndarray:
    """Frames of class ``label``: the forward clip (0) or exactly its time reverse (1); with
    ``time_order="shuffled"`` those frames in the random order drawn from ``p.order_seed``."""
    if label not in (0, 1):
        raise SyntheticDataError(f"label must be 0 or 1, got {label}")
    clip = render_forward(p)
    if label == 1:
        clip = clip[::-1]
    if time_order == "shuffled":
        clip = clip[np.random.default_rng(p.order_seed).permutation(len(clip))]
    return np.ascontiguousarray(clip)


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: int = _FPS) -> Path:
    """Encode (F, H, W, 3) uint8 RGB frames as an H.264 mp4 (near-lossless CRF 12), atomically."""
    if "libx264" not in av.codecs_available:
        raise SyntheticDataError("PyAV's FFmpeg has no libx264 encoder (the PyAV wheels include it)")
    # x264's SIMD code reads uninitialised frame padding, which makes encodes differ from run to
    # run; its C code (asm=0) on one thread with explicit timestamps is bit-identical per seed
    options = {"crf": "12", "threads": "1", "x264-params": "asm=0"}

    def write(tmp: str) -> None:
        with av.open(tmp, "w", format="mp4") as container:
            stream: Any = container.add_stream("libx264", rate=fps, options=options)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            for t, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = t, Fraction(1, fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())

    return atomic_write(path, write)


def _check(num_videos: int, frames: int, size: int, val_fraction: float, time_order: str) -> int:
    """Validate the settings; returns the number of validation videos."""
    if frames < 2:
        raise SyntheticDataError(f"frames must be >= 2 for a temporal order to exist, got {frames}")
    if size < 16 or size % 2:
        raise SyntheticDataError(f"size must be an even number >= 16 (H.264 4:2:0), got {size}")
    if not 0 < val_fraction < 1:
        raise SyntheticDataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if time_order not in ("natural", "shuffled"):
        raise SyntheticDataError(f"time_order must be 'natural' or 'shuffled', got {time_order!r}")
    num_val = max(2, round(num_videos * val_fraction))
    if num_videos - num_val < 2:
        raise SyntheticDataError(f"num_videos must leave >= 2 training and >= 2 validation videos, got {num_videos}")
    return num_val


def make_synthetic(
    out_dir: str | os.PathLike[str],
    num_videos: int = 400,
    task: str = "direction",
    frames: int = 16,
    size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.25,
    time_order: TimeOrder = "natural",
    progress: bool = True,
) -> SyntheticSet:
    """Write a two-class data set whose classes differ only in temporal order (module docstring).

    Video i has label ``i % 2`` (both classes equally often) and parameters
    :func:`sample_params` ``(task, i, seed, frames, size)``; the last ``round(num_videos *
    val_fraction)`` videos (at least 2) form the validation list.

    Args:
        out_dir: output directory (created); videos go to ``out_dir/videos/<i>.mp4``.
        num_videos: videos in total (train + val).
        task: ``"direction"`` or ``"approach"``.
        frames: frames per video F.
        size: frame side S in pixels (even).
        seed: seed of every random draw.
        val_fraction: share of videos in ``val.csv``.
        time_order: ``"natural"``, or ``"shuffled"`` for the frames of each video in a random order.
        progress: show a tqdm bar.

    Raises:
        SyntheticDataError: unusable settings.
        OutputError: the directory cannot be written (no space, no permission).
    """
    if task not in TASKS:
        raise SyntheticDataError(f"task must be one of {tuple(TASKS)}, got {task!r}")
    num_val = _check(num_videos, frames, size, val_fraction, time_order)
    root = Path(out_dir)
    rows: list[str] = []
    for i in tqdm(range(num_videos), desc=f"{task} videos", unit="video", disable=not progress):
        label = i % 2
        params = sample_params(task, i, seed, frames, size)
        clip = synthetic_clip(params, label, time_order)
        name = f"videos/{i:05d}.mp4"
        write_mp4(root / name, clip)
        rows.append(f"{name},{label}\n")
    split = num_videos - num_val
    train = atomic_write_text(root / "train.csv", "".join(rows[:split]))
    val = atomic_write_text(root / "val.csv", "".join(rows[split:]))
    labels = atomic_write_text(root / "labels.txt", "".join(f"{name}\n" for name in TASKS[task]))
    return SyntheticSet(root, train, val, labels, split, num_val)


#: Architectures of the learns-time recipe (:func:`learns_time_config`): UniFormerV2 with local and
#: global UniBlocks, and a frame-averaging ViT (no local MHRA, no global blocks: the mean over
#: frames of the final class token goes to the head).
LEARNS_TIME_MODELS: dict[str, dict[str, Any]] = {
    "uniformerv2": dict(local_mhra="single", return_list=[1, 2]),
    "frame_average": dict(local_mhra="none", return_list=[], mlp_dropout=[]),
}


def learns_time_config(
    data: SyntheticSet,
    output_dir: str | os.PathLike[str],
    model: str = "uniformerv2",
    fusion: str = "sequential",
    epochs: int = 6,
    num_frames: int = 8,
    seed: int = 0,
) -> TrainConfig:
    """The small from-scratch recipe of ``docs/learning-time.md`` as a :class:`~uniformerv2.train.TrainConfig`.

    A 3-block ViT of width 64 (2 heads, 8 x 8 patches of 32 px crops, ``num_frames`` frames without
    temporal downsampling) from random initialisation; AdamW at 1e-3 with one warmup epoch and
    half-cosine decay, batch 8, gradient clipping at 5, no dropout, no RandAugment, no flip (a
    flip turns left->right into right->left), random resized crops of 60-100 % of the frame,
    validation on the centre view every epoch, no final multi-view test, CPU, fp32.

    Args:
        data: the written data set (:func:`make_synthetic`).
        output_dir: the run directory.
        model: a key of :data:`LEARNS_TIME_MODELS`.
        fusion: multi-stage fusion strategy of the global blocks.
        epochs: training epochs.
        num_frames: frames per clip T.
        seed: seed of initialisation, shuffling and augmentation.
    """
    from uniformerv2.train.config import (
        AugConfig,
        DataConfig,
        EvalConfig,
        ModelConfig,
        OptimConfig,
        TrainConfig,
    )

    arch = dict(
        input_resolution=32,
        patch_size=8,
        width=64,
        layers=3,
        heads=2,
        n_dim=64,
        n_head=2,
        temporal_downsample=False,
        mlp_dropout=[0.0],
        cls_dropout=0.0,
        fusion=fusion,
    )
    arch.update(LEARNS_TIME_MODELS[model])
    return TrainConfig(
        model=ModelConfig(name="uniformerv2_b16", num_classes=2, labels_file=str(data.labels_file), arch=arch),
        data=DataConfig(
            train_list=str(data.train_list),
            val_list=str(data.val_list),
            root=str(data.root),
            num_frames=num_frames,
            crop_size=32,
            num_workers=0,
        ),
        aug=AugConfig(auto_augment="", flip=False, scale=(0.6, 1.0)),
        optim=OptimConfig(
            base_lr=1e-3, warmup_epochs=1, epochs=epochs, end_lr=1e-5, batch_size=8, amp="none", clip_grad=5.0
        ),
        eval=EvalConfig(final_test=False),
        output_dir=str(output_dir),
        seed=seed,
        resume="",
        device="cpu",
        progress=False,
    )
