"""A web page to try a checkpoint on a video: a thin Gradio layer over ``load_model``, ``predict`` and ``timeline``.

One request: the uploaded file is checked against the size and duration limits, the chosen model
is taken from a cache (each model is loaded once and shared by every request; requests queue and
run one at a time), and the page shows

* the top-5 classes of :func:`uniformerv2.predict` with the checkpoint's own test views (the scores
  ``uniformerv2 predict`` prints for the same file),
* the frames the checkpoint's sampling rule picks for the first view (clip 0, before cropping),
* for a video longer than :attr:`DemoConfig.timeline_min_windows` windows, the
  :func:`uniformerv2.timeline` heatmap (windows of :attr:`DemoConfig.timeline_seconds`).

Errors (unreadable video, missing weights, bad checkpoint) become one line on the page; a zoo model
whose weights are not cached shows which file to place where before anything is run.
Needs ``pip install 'uniformerv2[demo]'`` (gradio, matplotlib).
"""

from __future__ import annotations

import html
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from uniformerv2.errors import DownloadError, UniFormerV2Error, VideoDecodeError
from uniformerv2.inference import plot_timeline, predict, timeline
from uniformerv2.inference.engine import view_config
from uniformerv2.video import open_video, sample_indices

__all__ = ["DemoConfig", "ModelCache", "Outcome", "analyse", "build_app", "launch", "weights_note", "zoo_models"]

_logger = logging.getLogger(__name__)

#: The clip shipped with the source tree (``assets/sample.mp4``); absent from a wheel install.
SAMPLE_VIDEO = Path(__file__).resolve().parents[3] / "assets" / "sample.mp4"
#: Height of each frame in the strip of sampled frames.
STRIP_HEIGHT = 96


@dataclass
class DemoConfig:
    """What the page offers and what it accepts.

    Attributes:
        models: model sources in the menu (zoo names, checkpoint files, directories); the first is selected.
        device: where models run; None picks cuda, then mps, then cpu.
        max_upload_mb: largest upload accepted, in MB (10**6 bytes).
        max_seconds: longest video accepted, in seconds.
        timeline_seconds: window (and stride) of the timeline picture, in seconds.
        timeline_min_windows: a video spanning at least this many timeline windows gets the picture.
        sample: a video offered as an example, or None.
    """

    models: list[str]
    device: str | None = None
    max_upload_mb: float = 200.0
    max_seconds: float = 300.0
    timeline_seconds: float = 2.0
    timeline_min_windows: int = 3
    sample: Path | None = field(default_factory=lambda: SAMPLE_VIDEO if SAMPLE_VIDEO.is_file() else None)


def zoo_models() -> list[str]:
    """Zoo checkpoints with a classifier (the CLIP image encoders are left out)."""
    from uniformerv2.zoo import get_pretrained_cfg, list_pretrained

    return [n for n in list_pretrained() if get_pretrained_cfg(n).checkpoint_format != "clip"]


class ModelCache:
    """Models loaded once per source and shared between requests (thread-safe).

    Args:
        device: where to load them (see :func:`uniformerv2.runtime.resolve_device`).
        labels: per source, class names that replace the checkpoint's.
    """

    def __init__(self, device: str | None = None, labels: dict[str, list[str]] | None = None) -> None:
        from uniformerv2.runtime import resolve_device

        self.device = resolve_device(device)
        self.labels = labels or {}
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, source: str) -> Any:
        """The eval-mode model for ``source``, loading it on first use."""
        with self._lock:
            if source not in self._models:
                from uniformerv2.api import load_model

                _logger.info("loading %s on %s", source, self.device)
                self._models[source] = load_model(source, device=self.device, labels=self.labels.get(source))
            return self._models[source]


def weights_note(source: str) -> str:
    """Markdown saying where the weights of ``source`` are, or which file to place where when they are missing."""
    from uniformerv2.zoo import fetch_weights, list_pretrained
    from uniformerv2.zoo.download import is_offline

    if source not in list_pretrained():
        return f"Model: `{source}`"
    try:
        path = fetch_weights(source, offline=True, progress=False)
    except DownloadError as exc:
        place = str(exc)[str(exc).find("Place the file") :]
        if is_offline():
            return f"**Offline, weights not found.** {place}"
        return f"Weights not downloaded yet: the first request fetches them. Without network: {place}"
    return f"Weights: `{path}`"


@dataclass
class Outcome:
    """What the page shows for one request.

    Attributes:
        status: one Markdown line (the error, or what was run).
        predictions: ``[{"label", "score"}]`` best first (empty on error).
        strip: (h, w, 3) uint8 picture of the frames sampled for the first view, or None.
        timeline: (h, w, 3) uint8 heatmap picture, or None.
    """

    status: str
    predictions: list[dict[str, Any]] = field(default_factory=list)
    strip: np.ndarray | None = None
    timeline: np.ndarray | None = None


def analyse(video: str | None, source: str, cache: ModelCache, config: DemoConfig) -> Outcome:
    """Run one request; every expected failure becomes ``Outcome.status`` = ``error: <file>: <cause>``."""
    if not video:
        return Outcome("Upload a video or pick the sample, then press **Classify**.")
    name = Path(video).name
    try:
        frames, seconds = _check_limits(video, config)
        model = cache.get(source)
        predictions = cast(list[dict[str, Any]], predict(video, model, top_k=5))  # one video: one list
        outcome = Outcome(f"{name}: {frames} frames, {seconds:.1f} s; model `{source}`", predictions)
        outcome.strip = _sampled_strip(video, model)
        if seconds >= config.timeline_min_windows * config.timeline_seconds:
            outcome.timeline = _timeline_picture(video, model, config, name)
        return outcome
    except VideoDecodeError as exc:
        return Outcome(f"error: {name}: {exc.reason}")
    except DownloadError as exc:
        return Outcome(f"error: weights of {source} are missing. {str(exc)[str(exc).find('Place the file') :]}")
    except (UniFormerV2Error, KeyError, ValueError, OSError) as exc:
        text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip().splitlines()
        return Outcome(f"error: {text[0] if text else type(exc).__name__}")
    except Exception as exc:  # a page shows one line, never a traceback; the server log keeps the details
        _logger.exception("request for %s with %s failed", name, source)
        text = str(exc).strip().splitlines()
        return Outcome(f"error: {name}: {type(exc).__name__}: {text[0] if text else 'failed'}")


def _check_limits(video: str, config: DemoConfig) -> tuple[int, float]:
    """(frames, seconds) of the upload; VideoDecodeError when it is too large or too long."""
    size_mb = os.path.getsize(video) / 1e6
    if size_mb > config.max_upload_mb:
        raise VideoDecodeError(video, f"{size_mb:.0f} MB is more than this page accepts ({config.max_upload_mb:g} MB)")
    with open_video(video) as reader:
        frames, fps = reader.num_frames, reader.fps
    seconds = frames / fps if fps > 0 else float("nan")
    if not seconds <= config.max_seconds:
        length = f"{seconds:.0f} s" if seconds == seconds else "of unknown length"
        raise VideoDecodeError(video, f"the video is {length}; this page accepts up to {config.max_seconds:g} s")
    return frames, seconds


def _sampled_strip(video: str, model: Any) -> np.ndarray:
    """The frames of the first view (clip 0 of the checkpoint's sampling rule), side by side, before cropping."""
    from PIL import Image

    cfg = view_config(model)
    with open_video(video) as reader:
        indices = sample_indices(reader.num_frames, cfg, clip_idx=0, one_based=False)
        frames = reader.get_frames(indices).numpy()
    height, width = frames.shape[1:3]
    size = (max(1, round(width * STRIP_HEIGHT / height)), STRIP_HEIGHT)
    tiles = [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR)) for f in frames]
    gap = np.full((STRIP_HEIGHT, 4, 3), 255, np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)


def _timeline_picture(video: str, model: Any, config: DemoConfig, title: str) -> np.ndarray:
    from PIL import Image

    rows = timeline(video, model, window_seconds=config.timeline_seconds, stride_seconds=config.timeline_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_timeline(rows, Path(tmp) / "timeline.png", title=title)
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))


def predictions_html(predictions: list[dict[str, Any]]) -> str:
    """The top classes as a table with score bars; each row carries the exact score in ``data-score``."""
    if not predictions:
        return ""
    rows = "".join(
        f'<tr class="prediction" data-label="{html.escape(p["label"])}" data-score="{p["score"]!r}">'
        f'<td class="rank">{i}</td><td class="label">{html.escape(p["label"])}</td>'
        f'<td class="score">{p["score"]:.4f}</td>'
        f'<td class="bar"><div style="width:{100 * p["score"]:.1f}%;height:0.8em;background:#f97316"></div></td></tr>'
        for i, p in enumerate(predictions, 1)
    )
    head = "<tr><th>#</th><th>class</th><th>score</th><th style='width:40%'></th></tr>"
    return f'<table id="prediction-table" style="width:100%">{head}{rows}</table>'


def build_app(config: DemoConfig, cache: ModelCache | None = None) -> Any:
    """The Gradio Blocks page (not launched); ``cache`` defaults to a new :class:`ModelCache`."""
    import gradio as gr

    cache = cache or ModelCache(config.device)
    limits = f"Videos up to {config.max_upload_mb:g} MB and {config.max_seconds:g} s; running on `{cache.device}`."
    with gr.Blocks(title="UniFormerV2 video recognition", analytics_enabled=False) as app:
        gr.Markdown("# UniFormerV2 video recognition\nUpload a video, choose a model and press **Classify**.")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="video", sources=["upload"], include_audio=True, elem_id="video-input")
                if config.sample is not None:
                    gr.Examples([[str(config.sample)]], inputs=video, label="sample")
                model = gr.Dropdown(config.models, value=config.models[0], label="model", elem_id="model-choice")
                note = gr.Markdown(weights_note(config.models[0]), elem_id="weights-note")
                button = gr.Button("Classify", variant="primary", elem_id="classify")
                gr.Markdown(limits)
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                table = gr.HTML(elem_id="predictions")
                strip = gr.Image(label="frames sampled for the first view", interactive=False, elem_id="strip")
                picture = gr.Image(label="timeline", interactive=False, elem_id="timeline")
        model.change(weights_note, model, note)
        button.click(_handler(cache, config), [video, model], [status, table, strip, picture])
    return app


def _handler(cache: ModelCache, config: DemoConfig) -> Callable[[str | None, str], tuple[Any, ...]]:
    def run(video: str | None, source: str) -> tuple[Any, ...]:
        outcome = analyse(video, source, cache, config)
        return outcome.status, predictions_html(outcome.predictions), outcome.strip, outcome.timeline

    return run


def launch(config: DemoConfig, host: str = "127.0.0.1", port: int = 7860, cache: ModelCache | None = None) -> None:
    """Serve the page until interrupted; one request runs at a time, the others queue."""
    import gradio as gr

    app = build_app(config, cache)
    app.queue(default_concurrency_limit=1)
    allowed = [str(config.sample.parent)] if config.sample is not None else None
    theme = gr.themes.Base(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts: works offline
    app.launch(
        server_name=host,
        server_port=port,
        max_file_size=int(config.max_upload_mb * 1e6),
        allowed_paths=allowed,
        ssr_mode=False,
        footer_links=[],
        theme=theme,
        quiet=True,
    )
