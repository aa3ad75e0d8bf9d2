"""Snippet feature sequences: embed(..., window=, stride=) and `uniformerv2 embed --window`."""

from __future__ import annotations

import dataclasses
import importlib
import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from videogen import frame_image

from uniformerv2.cli.main import main
from uniformerv2.errors import VideoDecodeError
from uniformerv2.inference import embed
from uniformerv2.video import open_video
from uniformerv2.video.decode import ArrayReader
from uniformerv2.weights import save_pretrained

features_module = importlib.import_module("uniformerv2.inference._features")
timeline_module = importlib.import_module("uniformerv2.inference._timeline")


@pytest.fixture
def model():
    """Tiny model whose test sampling takes a T-frame video's frames as they are (dense, interval 1),
    so that ``embed`` of T hand-cut frames sees exactly those frames."""
    net = make_tiny_model()
    cfg = net.pretrained_cfg["preprocess"]
    net.pretrained_cfg["preprocess"] = dataclasses.replace(cfg, sampling="dense", frame_interval=1)
    return net


@pytest.fixture
def video(make_test_video) -> Path:
    return make_test_video("clip.mp4", num_frames=50, width=64, height=48, fps=25)


def _cut(path: Path, start: int, window: int, t: int) -> torch.Tensor:
    """The T frames the model should see for a snippet, decoded one by one: start + floor((i + 1/2) window / T)."""
    with open_video(path) as reader:
        return reader.get_frames([start + int((i + 0.5) * window / t) for i in range(t)])


def test_snippet_features_equal_embed_of_hand_cut_frames(model, video) -> None:
    out = embed(video, model, window=8, stride=4)
    assert out.start_frame == list(range(0, 43, 4)) and out.end_frame == [s + 8 for s in out.start_frame]
    assert out.features.shape == (11, model.num_features) and out.features.dtype == torch.float32
    for j in (0, 5, 10):
        start = out.start_frame[j]
        frames = _cut(video, start, 8, 4)
        assert frames.shape[0] == 4
        expected = embed(frames.numpy(), model, views=(1, 1))
        assert (out.features[j] - expected).abs().max() <= 1e-5


def test_default_window_is_t_consecutive_frames(model, video) -> None:
    out = embed(video, model, stride=4)  # window defaults to T = 4: consecutive frames
    assert out.window == 4 and out.start_frame[:3] == [0, 4, 8] and len(out.start_frame) == 12
    with open_video(video) as reader:
        frames = reader.get_frames(range(20, 24))
    assert (out.features[5] - embed(frames.numpy(), model, views=(1, 1))).abs().max() <= 1e-5


def test_three_crops_and_layer_tokens(model, video) -> None:
    out = embed(video, model, window=8, stride=8, views=(1, 3), layers=[0, -1])
    frames = _cut(video, 16, 8, 4).numpy()
    ref = embed(frames, model, views=(1, 3), layers=[0, 1])
    assert (out.features[2] - ref["embedding"]).abs().max() <= 1e-5
    assert sorted(out.cls) == [0, 1] and out.cls[1].shape == (6, 4, 64)
    assert out.patches[0].shape == (6, 4, 2, 2, 64)
    torch.testing.assert_close(out.cls[0][2], ref["cls"][0], atol=1e-5, rtol=1e-5)  # centre crop
    torch.testing.assert_close(out.patches[1][2], ref["patches"][1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="1x1 or 1x3"):
        embed(video, model, window=8, views=(4, 3))


def test_times_in_seconds_and_short_video(model, make_test_video) -> None:
    out = embed(make_test_video("v.mp4", num_frames=30, fps=10), model, window=6, stride=3)
    assert out.fps == pytest.approx(10.0) and out.duration == pytest.approx(3.0)
    assert out.start[:2] == pytest.approx([0.0, 0.3]) and out.end[-1] == pytest.approx(3.0)
    short = embed(make_test_video("s.mp4", num_frames=3), model, window=8, stride=4)
    assert (short.start_frame, short.end_frame) == ([0], [3])
    arrays = embed([np.zeros((9, 32, 32, 3), np.uint8)] * 2, model, window=4, stride=5)
    assert len(arrays) == 2 and arrays[0].start_frame == [0, 5] and arrays[0].start is None


def test_bad_video_raises(model, tmp_path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        embed(bad, model, window=4)


class _LongReader(ArrayReader):
    """A long synthetic video produced frame by frame (never held in memory as a whole)."""

    def __init__(self, num_frames: int) -> None:
        super().__init__(np.zeros((1, 32, 32, 3), np.uint8), fps=25.0, name="<long>")
        self._n = num_frames

    @property
    def num_frames(self) -> int:
        return self._n

    def iter_frames(self, start: int = 0, stop: int | None = None):
        for i in range(start, self._n if stop is None else stop):
            yield torch.from_numpy(frame_image(i % 4096, 32, 32))


def test_streaming_keeps_about_one_window_of_frames(model, monkeypatch) -> None:
    alive: weakref.WeakSet = weakref.WeakSet()
    peak = [0]
    preprocess = timeline_module.crop_views

    def tracked(frames: torch.Tensor, cfg: Any, spatial_ids: Any) -> torch.Tensor:
        out = preprocess(frames, cfg, spatial_ids)
        alive.add(out)
        peak[0] = max(peak[0], len(alive))
        return out

    monkeypatch.setattr(timeline_module, "crop_views", tracked)
    monkeypatch.setattr(features_module, "open_source", lambda video, index, decode_short_side=None: video)
    out = features_module.snippet_features(_LongReader(1200), model, window=8, stride=8, batch_size=32)
    assert out.features.shape == (150, 64)
    assert peak[0] <= 2 * 8  # preprocessed frames alive at once: about one window, never the video


def test_cli_writes_feature_files_and_index(model, video, make_test_video, tmp_path, capsys) -> None:
    model_dir = save_pretrained(model, tmp_path / "m")
    other = make_test_video("sub/other.mp4", num_frames=20, fps=25)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0" * 100)
    out = tmp_path / "feats"
    args = ["embed", str(video), str(other), str(broken), "--model", str(model_dir), "--out", str(out)]
    args += ["--window", "8", "--stride", "4", "--workers", "0", "--layers", "-1"]
    assert main(args) == 1
    assert "broken.mp4" in capsys.readouterr().err
    index = json.loads((out / "index.json").read_text())
    assert index["feature_stride"] == 4 and index["window"] == 8 and index["dim"] == 64
    entry = index["database"]["clip"]
    assert entry["fps"] == pytest.approx(25.0) and entry["num_snippets"] == 11
    assert entry["start_frame"][1] == 4 and entry["end"][1] == pytest.approx(12 / 25)
    feats = np.load(out / entry["file"])
    assert entry["file"] == "clip.npy" and feats.dtype == np.float32 and feats.shape == (11, 64)
    np.testing.assert_allclose(feats, embed(video, model, window=8, stride=4).features.numpy(), atol=1e-6)
    assert np.load(out / entry["tokens"]["cls.1"]).shape == (11, 4, 64)
    assert index["database"]["other"]["num_snippets"] == 4
    assert [e["video"] for e in index["errors"]] == [str(broken)]
    stamp = (out / "clip.npy").stat().st_mtime_ns
    assert main(args[:3] + args[4:]) == 0  # resume: the broken file left out, the others already done
    assert (out / "clip.npy").stat().st_mtime_ns == stamp
    assert main(args[:3] + args[4:-4] + ["--stride", "8"]) == 2  # other settings: not mixed with these
    assert "--overwrite" in capsys.readouterr().err
    assert main(args[:3] + args[4:-4] + ["--stride", "8", "--overwrite"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["feature_stride"] == 8 and np.load(out / "clip.npy").shape == (6, 64)
    assert main(["embed", str(video), "--model", str(model_dir), "--out", str(out), "--workers", "0"]) == 0
    assert (out / "index.csv").read_text().count("\n") == 2  # plain embeddings beside the snippet features
