"""embed(): pooled features and layer tokens; timeline(): windows, scores, bounded memory, plot."""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from videogen import frame_image

from uniformerv2.errors import VideoDecodeError
from uniformerv2.inference import embed, plot_timeline, timeline
from uniformerv2.video import extract_views, open_video, test_views
from uniformerv2.video.decode import ArrayReader

# the package re-exports the function timeline(), which hides the module of the same name
timeline_module = importlib.import_module("uniformerv2.inference._timeline")


@pytest.fixture
def model():
    return make_tiny_model()


@pytest.fixture
def video(make_test_video) -> Path:
    return make_test_video("clip.mp4", num_frames=30, width=64, height=48)


def test_embed_is_mean_of_forward_features(model, video) -> None:
    cfg = model.pretrained_cfg["preprocess"]
    with open_video(video) as reader, torch.no_grad():
        expected = model.forward_features(extract_views(reader, cfg)).mean(0)
    single = embed(video, model)
    assert single.shape == (model.num_features,)
    torch.testing.assert_close(single, expected, atol=1e-5, rtol=1e-5)
    both = embed([video, video], model, views=(1, 1))
    assert both.shape == (2, model.num_features)


def test_embed_layer_tokens_come_from_the_middle_view(model, video) -> None:
    cfg = model.pretrained_cfg["preprocess"]  # 2 clips x 3 crops: the middle view is clip 1, centre crop
    with open_video(video) as reader, torch.no_grad():
        views = extract_views(reader, cfg)
        ref = model.forward_tokens(views[1 * 3 + 1 : 1 * 3 + 2], [0, 1])
    out = embed([video, video], model, layers=[0, -1])
    assert set(out) == {"embedding", "cls", "patches"}
    assert sorted(out["cls"]) == [0, 1]
    assert out["cls"][1].shape == (2, 4, 64)  # (B, T', C)
    assert out["patches"][0].shape == (2, 4, 2, 2, 64)  # (B, T', h, w, C)
    torch.testing.assert_close(out["cls"][0][0], ref["cls"][0][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["patches"][1][1], ref["patches"][1][0], atol=1e-5, rtol=1e-5)
    single = embed(video, model, layers=[1])
    assert single["embedding"].shape == (64,) and single["patches"][1].shape == (4, 2, 2, 64)


def test_embed_raises_on_bad_video(model, tmp_path) -> None:
    with pytest.raises(VideoDecodeError, match="missing.mp4"):
        embed(tmp_path / "missing.mp4", model)


def test_timeline_windows_and_scores(model, make_test_video) -> None:
    path = make_test_video("long.mp4", num_frames=50, width=64, height=48, fps=25)
    rows = timeline(path, model, window=10, stride=5, top_k=5)
    assert [r["start_frame"] for r in rows] == list(range(0, 41, 5))
    assert rows[-1]["end_frame"] == 50
    assert rows[1]["start"] == pytest.approx(0.2) and rows[1]["end"] == pytest.approx(0.6)
    cfg = model.pretrained_cfg["preprocess"]
    with open_video(path) as reader:
        idx = timeline_module.window_indices(15, 10, cfg.num_frames)
        assert idx == [16, 18, 21, 23]
        with torch.no_grad():
            probs = model(test_views([reader.get_frames(idx)], cfg, num_crops=1)).softmax(-1)[0]
    labels = model.pretrained_cfg["labels"]
    expected = {labels[i]: float(p) for i, p in enumerate(probs)}
    got = {item["label"]: item["score"] for item in rows[3]["top"]}
    assert got == pytest.approx(expected, abs=1e-5)


def test_timeline_defaults_and_short_video(model, make_test_video) -> None:
    rows = timeline(make_test_video("short.mp4", num_frames=3), model)
    assert len(rows) == 1 and (rows[0]["start_frame"], rows[0]["end_frame"]) == (0, 3)
    rows = timeline(make_test_video("ten.mp4", num_frames=10), model, crops=3, top_k=2)
    assert [r["start_frame"] for r in rows] == [0, 2, 4, 6]  # window T=4, stride 2
    assert all(len(r["top"]) == 2 for r in rows)


def test_timeline_seconds_and_fps(model) -> None:
    frames = torch.zeros(40, 32, 32, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="frame rate"):
        timeline(frames, model, window_seconds=1.0)
    rows = timeline(frames, model, window_seconds=0.8, stride_seconds=0.4, fps_override=10)
    assert [(r["start_frame"], r["end_frame"]) for r in rows][:2] == [(0, 8), (4, 12)]
    assert rows[0]["end"] == pytest.approx(0.8)
    untimed = timeline(frames, model)
    assert untimed[0]["start"] is None


class _EndlessReader(ArrayReader):
    """A long synthetic video produced frame by frame (never held in memory as a whole)."""

    def __init__(self, num_frames: int) -> None:
        super().__init__(np.zeros((1, 32, 32, 3), np.uint8), fps=25.0, name="<endless>")
        self._n = num_frames

    @property
    def num_frames(self) -> int:
        return self._n

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        for i in range(start, self._n if stop is None else stop):
            yield torch.from_numpy(frame_image(i % 4096, 32, 32))


def test_timeline_streams_with_bounded_memory(model, monkeypatch) -> None:
    alive: weakref.WeakSet = weakref.WeakSet()
    peak = [0]
    preprocess = timeline_module.crop_views

    def tracked(frames: torch.Tensor, cfg: Any, spatial_ids: Any) -> torch.Tensor:
        out = preprocess(frames, cfg, spatial_ids)
        alive.add(out)
        peak[0] = max(peak[0], len(alive))
        return out

    monkeypatch.setattr(timeline_module, "crop_views", tracked)
    monkeypatch.setattr(timeline_module, "open_source", lambda video, index, decode_short_side=None: video)
    rows = timeline(_EndlessReader(2000), model, window=8, stride=8, batch_size=64)
    assert len(rows) == 250
    assert peak[0] <= 2 * 8  # preprocessed frames alive at once: about one window, never the video


def test_plot_timeline_writes_image_atomically(model, make_test_video, tmp_path) -> None:
    rows = timeline(make_test_video("p.mp4", num_frames=20), model, window=4, stride=4)
    out = plot_timeline(rows, tmp_path / "plots" / "timeline.png", max_classes=3, title="p.mp4")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["timeline.png"]
    with pytest.raises(ValueError):
        plot_timeline([], tmp_path / "empty.png")
