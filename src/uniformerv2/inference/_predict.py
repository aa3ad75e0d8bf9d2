"""Classify videos and extract embeddings with the official multi-view test protocol.

Each video is decoded, sampled and cropped into V = clips x crops views exactly as the official
test (official behaviour §3.3-3.4, :func:`uniformerv2.video.extract_views`). For classification
every view goes through the model and a softmax, and the V probability vectors are **averaged**.
The official ``TestMeter`` sums them instead; the mean ranks classes identically and keeps scores
in [0, 1] so they read as probabilities (the Hugging Face pipeline convention).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from uniformerv2.errors import VideoDecodeError
from uniformerv2.inference.engine import (
    Result,
    VideoLike,
    as_video_list,
    model_labels,
    resolve_model,
    run_views,
    top_classes,
    view_config,
)

__all__ = ["predict", "predict_many", "embed", "embed_many"]

_logger = logging.getLogger(__name__)

Prediction = list[dict[str, Any]]


def predict_many(
    videos: Sequence[VideoLike],
    model: Any = None,
    *,
    views: tuple[int, int] | str | None = None,
    top_k: int | None = 5,
    batch_size: int = 12,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | str | None = None,
    decode_short_side: int | None = None,
    progress: bool = False,
) -> Iterator[Result]:
    """Classify many videos, yielding one :class:`Result` per video as it completes.

    A video that cannot be decoded gives a Result with ``error`` set; the others carry on. The
    arguments are those of :func:`predict`.

    Yields:
        :class:`Result` with ``value`` = ``[{"label": str, "score": float}, ...]`` best first.
    """
    net, dev = resolve_model(model, device)
    labels = model_labels(net)
    cfg = view_config(net, views)
    _logger.info(
        "views: %d clips x %d crops of %d frames at %d px", cfg.num_clips, cfg.num_crops, cfg.num_frames, cfg.crop_size
    )

    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"probs": net(x).float().softmax(dim=-1)}

    def finish(value: dict[str, torch.Tensor]) -> Any:
        return top_classes(value["probs"].mean(dim=0), labels, top_k)

    options = dict(batch_size=batch_size, num_workers=num_workers, amp_dtype=amp_dtype)
    yield from _per_video(videos, cfg, forward, finish, dev, decode_short_side, progress, options)


def _per_video(
    videos: Sequence[VideoLike],
    cfg: Any,
    forward: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    finish: Callable[[dict[str, torch.Tensor]], Any],
    device: torch.device,
    decode_short_side: int | None,
    progress: bool,
    options: dict[str, Any],
) -> Iterator[Result]:
    """:func:`run_views` behind a per-video progress bar, each successful value passed through ``finish``."""
    stream = run_views(videos, cfg, forward, device=device, decode_short_side=decode_short_side, **options)
    for result in tqdm(stream, total=len(videos), disable=not progress, unit="video"):
        if result.ok:
            result.value = finish(result.value)
        yield result


def predict(
    videos: VideoLike | Sequence[VideoLike],
    model: Any = None,
    *,
    views: tuple[int, int] | str | None = None,
    top_k: int | None = 5,
    batch_size: int = 12,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | str | None = None,
    decode_short_side: int | None = None,
    progress: bool = False,
    return_errors: bool = False,
) -> Prediction | list[Prediction | Exception]:
    """Top-k classes of one or more videos (Hugging Face video-classification output format).

    Args:
        videos: a path (video file or frame folder), decoded (T, H, W, 3) uint8 RGB frames
            (numpy or torch), or a list of those.
        model: a loaded model, or a zoo name / checkpoint path / model directory / Hub id for
            :func:`uniformerv2.load_model`; None loads ``uniformerv2.zoo.DEFAULT_MODEL``.
        views: (clips, crops) or ``"KxS"`` overriding the checkpoint's test views
            (``model.pretrained_cfg["preprocess"]``); e.g. (1, 1) for one centre view.
        top_k: classes per video; None for all.
        batch_size: most views per forward pass (views of several videos share a pass).
        num_workers: DataLoader processes that decode and preprocess while the model runs.
        device: "cuda", "mps", "cpu", ...; a given model is moved there (in place). None keeps
            a given model's device, or picks cuda, then mps, then cpu for a model loaded here.
        amp_dtype: run under autocast with ``torch.bfloat16``/"bf16" or ``torch.float16``/"fp16".
        decode_short_side: decode video files with their short side scaled down to at most this
            many pixels (FFmpeg, bilinear), which saves time and memory on 1080p/4K inputs but
            changes pixels slightly from the official full-resolution pipeline; None (default) is exact.
        progress: show a tqdm bar over videos.
        return_errors: put a :class:`~uniformerv2.errors.VideoDecodeError` in place of a failed
            video's list instead of raising.

    Returns:
        For each video ``[{"label": str, "score": float}, ...]`` sorted by score, the score being
        the mean over views of the per-view softmax. A single video gives a single list.

    Raises:
        VideoDecodeError: a video could not be read (unless ``return_errors``).
    """
    items, single = as_video_list(videos)
    out: list[Prediction | Exception | None] = [None] * len(items)
    for result in predict_many(
        items,
        model,
        views=views,
        top_k=top_k,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        amp_dtype=amp_dtype,
        decode_short_side=decode_short_side,
        progress=progress,
    ):
        if result.ok:
            out[result.index] = result.value
        elif return_errors:
            out[result.index] = VideoDecodeError(result.video, str(result.error))
        else:
            result.raise_error()
    return out[0] if single else out  # type: ignore[return-value]


def embed_many(
    videos: Sequence[VideoLike],
    model: Any = None,
    *,
    views: tuple[int, int] | str | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 12,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | str | None = None,
    decode_short_side: int | None = None,
    progress: bool = False,
) -> Iterator[Result]:
    """Embed many videos, yielding one :class:`Result` per video as it completes.

    The arguments are those of :func:`embed`.

    Yields:
        :class:`Result` whose ``value`` is the (n,) embedding, or with ``layers`` a dict
        ``{"embedding": (n,), "cls": {i: (T', C)}, "patches": {i: (T', h, w, C)}}``.
    """
    net, dev = resolve_model(model, device)
    cfg = view_config(net, views)
    keep = list(layers) if layers is not None else None
    middle = (cfg.num_clips // 2) * cfg.num_crops + cfg.num_crops // 2

    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        if keep is None:
            return {"features": net.forward_features(x)}
        out = net.forward_tokens(x, keep)
        tokens = {f"cls.{i}": t for i, t in out["cls"].items()}
        tokens.update({f"patches.{i}": t for i, t in out["patches"].items()})
        return {"features": out["features"], **tokens}

    def finish(value: dict[str, torch.Tensor]) -> Any:
        return _embedding(value, middle, keep is not None)

    options = dict(batch_size=batch_size, num_workers=num_workers, amp_dtype=amp_dtype)
    yield from _per_video(videos, cfg, forward, finish, dev, decode_short_side, progress, options)


def _embedding(outputs: dict[str, torch.Tensor], view: int, with_tokens: bool) -> Any:
    """Mean of the per-view features; tokens of view ``view`` when requested."""
    pooled = outputs["features"].mean(dim=0)
    if not with_tokens:
        return pooled
    tokens: dict[str, dict[int, torch.Tensor]] = {"cls": {}, "patches": {}}
    for key, value in outputs.items():
        kind, _, layer = key.partition(".")
        if kind in tokens:
            tokens[kind][int(layer)] = value[view]
    return {"embedding": pooled, **tokens}


def embed(
    videos: VideoLike | Sequence[VideoLike],
    model: Any = None,
    *,
    views: tuple[int, int] | str | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 12,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | str | None = None,
    decode_short_side: int | None = None,
    progress: bool = False,
    window: int | None = None,
    stride: int | None = None,
) -> Any:
    """Pooled video embeddings, averaged over the test views.

    The embedding is ``model.forward_features`` of each view: the fused video representation
    of width n = ``model.num_features``, taken *before* the head's LayerNorm and classifier.

    Args:
        videos: as for :func:`predict`.
        model: as for :func:`predict`.
        views: (clips, crops) or ``"KxS"``; the checkpoint's test views when None.
        layers: block indices (negative counts from the end) whose tokens to return as well.
            Tokens come from one view, the centre crop of clip K // 2 (the only view with 1x1).
        batch_size: most views per forward pass.
        num_workers: DataLoader decoding processes.
        device: as for :func:`predict`.
        amp_dtype: as for :func:`predict`.
        progress: show a tqdm bar over videos.
        window: frames per snippet; with ``window`` or ``stride`` the result is a feature
            sequence per video (:class:`~uniformerv2.inference._features.SnippetFeatures`, one
            list of them for a list of videos; ``views`` is then 1x1 or 1x3), decoded as a stream.
        stride: frames between snippet starts (default half a window).

    Returns:
        A (B, n) float32 tensor for a list of B videos, (n,) for a single video. With ``layers``
        a dict ``{"embedding": (B, n), "cls": {i: (B, T', C)}, "patches": {i: (B, T', h, w, C)}}``
        (no B dimension for a single video), with C = ``model.config.width``, T' the frames after
        the stem (T, or T/2 for temporally downsampling models) and h = w = crop / patch size.

    Raises:
        VideoDecodeError: a video could not be read.
    """
    if window is not None or stride is not None:
        from uniformerv2.inference._features import crops_from_views, embed_snippets

        return embed_snippets(
            videos,
            model,
            window=window,
            stride=stride,
            crops=crops_from_views(views),
            layers=layers,
            batch_size=batch_size,
            device=device,
            amp_dtype=amp_dtype,
            decode_short_side=decode_short_side,
            progress=progress,
        )
    items, single = as_video_list(videos)
    values: list[Any] = [None] * len(items)
    for result in embed_many(
        items,
        model,
        views=views,
        layers=layers,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        amp_dtype=amp_dtype,
        decode_short_side=decode_short_side,
        progress=progress,
    ):
        result.raise_error()
        values[result.index] = result.value
    if single:
        return values[0]
    if layers is None:
        return torch.stack(values)
    return {
        "embedding": torch.stack([v["embedding"] for v in values]),
        "cls": {i: torch.stack([v["cls"][i] for v in values]) for i in values[0]["cls"]},
        "patches": {i: torch.stack([v["patches"][i] for v in values]) for i in values[0]["patches"]},
    }
