"""predict(): step-by-step reference, checkpoint formats, inputs, batching and failures."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_LABELS, make_tiny_model, save_mmaction2, save_official, tiny_preprocess

import uniformerv2
from uniformerv2.errors import VideoDecodeError
from uniformerv2.inference import predict, predict_many
from uniformerv2.video import segment_indices
from uniformerv2.weights import permute_head


def _decode_all(path: Path) -> np.ndarray:
    """Every frame of the file as (N, H, W, 3) uint8 RGB, straight from PyAV."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _reference(model: torch.nn.Module, path: Path, clips: int, crops: int) -> dict[str, float]:
    """Official multi-view test written out with plain torch ops: label -> mean softmax score."""
    frames = _decode_all(path)
    size, t = 32, 4
    mean, std = 0.45, 0.225
    views = []
    for k in range(clips):
        idx = segment_indices(len(frames), t, k, clips)
        x = torch.from_numpy(frames[idx]).float() / 255.0  # (T, H, W, 3)
        x = ((x - mean) / std).permute(3, 0, 1, 2)  # (3, T, H, W)
        h, w = x.shape[-2:]
        if h <= w:
            new_h, new_w = size, math.floor(w / h * size)
        else:
            new_h, new_w = math.floor(h / w * size), size
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        long_side = max(new_h, new_w)
        offsets = (
            [0, math.ceil((long_side - size) / 2), long_side - size]
            if crops == 3
            else [math.ceil((long_side - size) / 2)]
        )
        for off in offsets:
            views.append(x[..., :, off : off + size] if new_w >= new_h else x[..., off : off + size, :])
    with torch.no_grad():
        probs = model(torch.stack(views)).softmax(-1).mean(0)
    labels = model.pretrained_cfg["labels"]
    return {labels[i]: float(p) for i, p in enumerate(probs)}


@pytest.fixture
def official_model(tmp_path: Path) -> uniformerv2.UniFormerV2:
    """The seed-0 tiny model written as an official .pyth and loaded back."""
    path = save_official(make_tiny_model(), tmp_path / "tiny.pyth")
    model = uniformerv2.load_model(path, labels=TINY_LABELS)
    model.pretrained_cfg["preprocess"] = tiny_preprocess()
    return model


@pytest.fixture
def video(make_test_video) -> Path:
    return make_test_video("clip.mp4", num_frames=30, width=64, height=48)


@pytest.mark.parametrize("views", [(2, 3), (1, 1), (3, 1)])
def test_matches_step_by_step_reference(official_model, video, views) -> None:
    expected = _reference(official_model, video, *views)
    got = predict(video, official_model, views=views, top_k=None)
    assert [row["label"] for row in got] == sorted(expected, key=expected.get, reverse=True)
    for row in got:
        assert row["score"] == pytest.approx(expected[row["label"]], abs=1e-5)
    assert sum(row["score"] for row in got) == pytest.approx(1.0, abs=1e-5)


def test_portrait_video_crops_along_height(official_model, make_test_video) -> None:
    tall = make_test_video("tall.mp4", num_frames=12, width=48, height=64)
    expected = _reference(official_model, tall, 2, 3)
    got = {row["label"]: row["score"] for row in predict(tall, official_model, top_k=None)}
    assert got == pytest.approx(expected, abs=1e-5)


def test_mmaction2_checkpoint_with_permuted_head_gives_same_scores(official_model, video, tmp_path) -> None:
    order = [3, 0, 4, 1, 2]
    model = make_tiny_model()
    model.load_state_dict(permute_head(model.state_dict(), order))
    path = save_mmaction2(model, tmp_path / "tiny_mm.pth")
    mm = uniformerv2.load_model(path, labels=[TINY_LABELS[i] for i in order])
    mm.pretrained_cfg["preprocess"] = tiny_preprocess()
    ours = {r["label"]: r["score"] for r in predict(video, official_model, top_k=None)}
    theirs = {r["label"]: r["score"] for r in predict(video, mm, top_k=None)}
    assert theirs == pytest.approx(ours, abs=1e-6)


def test_input_kinds_agree(official_model, video) -> None:
    frames = _decode_all(video)
    by_path = predict(str(video), official_model)
    by_pathlib = predict(video, official_model)
    by_numpy = predict(frames, official_model)
    by_tensor = predict(torch.from_numpy(frames), official_model)
    for other in (by_pathlib, by_numpy, by_tensor):
        assert [r["label"] for r in other] == [r["label"] for r in by_path]
        assert [r["score"] for r in other] == pytest.approx([r["score"] for r in by_path], abs=1e-6)
    batch = predict([video, frames], official_model, top_k=2)
    assert len(batch) == 2 and all(len(rows) == 2 for rows in batch)


def test_model_by_path_and_top_k(tmp_path, tiny_model_dir, video) -> None:
    rows = predict(video, str(tiny_model_dir), top_k=3)
    assert len(rows) == 3 and set(rows[0]) == {"label", "score"}
    assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]
    assert len(predict(video, str(tiny_model_dir), top_k=50)) == 5


@pytest.mark.parametrize("kwargs", [{"batch_size": 1}, {"batch_size": 7}, {"num_workers": 2}, {"device": "cpu"}])
def test_batching_and_workers_do_not_change_results(official_model, video, make_test_video, kwargs) -> None:
    other = make_test_video("other.mp4", num_frames=17, width=40, height=40)
    base = predict([video, other, video], official_model, top_k=None, batch_size=100)
    got = predict([video, other, video], official_model, top_k=None, **kwargs)
    for a, b in zip(base, got, strict=False):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-5)


def test_bf16_autocast_is_close(official_model, video) -> None:
    exact = {r["label"]: r["score"] for r in predict(video, official_model, top_k=None)}
    amp = {r["label"]: r["score"] for r in predict(video, official_model, top_k=None, amp_dtype="bf16")}
    assert amp == pytest.approx(exact, abs=3e-2)


def test_bad_video_raises_and_batches_finish(official_model, video, tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        predict(broken, official_model)
    with pytest.raises(VideoDecodeError, match="missing.mp4: file does not exist"):
        predict([video, tmp_path / "missing.mp4"], official_model)
    mixed = predict([video, broken, video], official_model, return_errors=True)
    assert isinstance(mixed[1], VideoDecodeError) and mixed[1].path == str(broken)
    assert [r["label"] for r in mixed[0]] == [r["label"] for r in mixed[2]]
    results = sorted(predict_many([broken, video], official_model), key=lambda r: r.index)
    assert [r.ok for r in results] == [False, True]
    assert results[0].video == str(broken) and "\n" not in results[0].error


def test_bad_arrays_are_rejected(official_model) -> None:
    with pytest.raises(ValueError, match="uint8"):
        predict(np.zeros((4, 32, 32, 3), np.float32), official_model)
    with pytest.raises(ValueError, match="views"):
        predict(np.zeros((4, 32, 32, 3), np.uint8), official_model, views="4x2")


def test_decode_short_side_scales_frames_and_stays_close(official_model, make_test_video) -> None:
    from uniformerv2.inference.engine import open_source

    big = make_test_video("big.mp4", num_frames=12, width=160, height=120)
    with open_source(big, 0, decode_short_side=48) as reader:
        assert (reader.height, reader.width) == (48, 64)
    exact = {d["label"]: d["score"] for d in predict(big, official_model, views=(1, 3), top_k=None)}
    fast = {
        d["label"]: d["score"] for d in predict(big, official_model, views=(1, 3), top_k=None, decode_short_side=48)
    }
    assert exact.keys() == fast.keys()
    assert max(abs(exact[k] - fast[k]) for k in exact) < 0.05
    assert exact != fast  # pixels differ slightly from the full-resolution path


def test_a_crashed_decoding_process_fails_only_its_video(monkeypatch, tiny_model, make_test_video) -> None:
    """A decoder that kills its DataLoader worker (a segfault in FFmpeg, the OOM killer) costs that video
    only: the others are classified exactly as without the crash."""
    import os

    import uniformerv2.inference.engine as engine

    videos = [str(make_test_video(f"v{i}.mp4", num_frames=8 + i)) for i in range(4)]
    crash = str(make_test_video("crash.mp4", num_frames=8))
    real_open = engine.open_source

    def open_or_die(video, index, decode_short_side):
        if str(video).endswith("crash.mp4"):
            os._exit(3)  # only ever called in a worker process here
        return real_open(video, index, decode_short_side)

    expected = predict(videos, tiny_model, views=(1, 1))
    monkeypatch.setattr(engine, "open_source", open_or_die)
    order = [videos[0], crash, *videos[1:]]
    results = sorted(predict_many(order, tiny_model, views=(1, 1), num_workers=2), key=lambda r: r.index)
    assert [r.video for r in results] == order
    assert not results[1].ok and "decoding process" in results[1].error
    assert [r.value for i, r in enumerate(results) if i != 1] == expected
