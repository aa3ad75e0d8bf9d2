"""`uniformerv2 predict|embed|timeline`: outputs, inputs, broken videos and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_LABELS, make_tiny_model, save_official
from videogen import make_audio

from uniformerv2.cli.main import main
from uniformerv2.inference import predict
from uniformerv2.weights import from_ours

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "assets" / "sample.mp4"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture
def broken_videos(tmp_path, make_test_video) -> dict[str, Path]:
    """One file per way a video can be broken."""
    bad = tmp_path / "bad"
    bad.mkdir()
    good = make_test_video("for_truncation.mp4", num_frames=30)
    kinds = {
        "empty": bad / "empty.mp4",
        "garbage": bad / "garbage.mp4",
        "text": bad / "notes.avi",
        "truncated": bad / "truncated.mp4",
        "audio": bad / "audio_only.m4a",
        "missing": bad / "missing.mp4",
    }
    kinds["empty"].write_bytes(b"")
    kinds["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    kinds["text"].write_text("this is not a video\n" * 20)
    kinds["truncated"].write_bytes(good.read_bytes()[:300])
    make_audio(kinds["audio"])
    return kinds


def test_predict_reports_every_broken_kind_and_finishes_the_rest(
    capsys, tiny_model_dir, make_test_video, broken_videos
) -> None:
    good = [make_test_video("good1.mp4"), make_test_video("good2.webm", codec="libvpx-vp9")]
    code, out, err = _run(
        capsys, "predict", good[0], *broken_videos.values(), good[1], "--model", tiny_model_dir, "--workers", "0"
    )
    assert code == 1
    for path in good:
        assert str(path) in out
    assert out.count("1. ") == 2
    errors = _error_lines(err)
    assert len(errors) == len(broken_videos)
    for path in broken_videos.values():
        assert sum(str(path) in line for line in errors) == 1, path


def test_predict_outputs_json_and_csv(capsys, tmp_path, tiny_model_dir, make_test_video) -> None:
    video = make_test_video("clip.mp4", num_frames=20)
    missing = tmp_path / "missing.mp4"
    out_json, out_csv = tmp_path / "out" / "preds.json", tmp_path / "out" / "preds.csv"
    code, out, _ = _run(
        capsys,
        "predict",
        video,
        missing,
        "--model",
        tiny_model_dir,
        "--views",
        "1x1",
        "--top-k",
        "2",
        "--json",
        out_json,
        "--csv",
        out_csv,
        "--workers",
        "2",
    )
    assert code == 1
    records = json.loads(out_json.read_text())
    assert [r["video"] for r in records] == [str(video), str(missing)]
    assert records[0]["predictions"] == predict(video, str(tiny_model_dir), views=(1, 1), top_k=2)
    assert records[1]["error"] == "file does not exist"
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == ["video", "label_1", "score_1", "label_2", "score_2", "error"]
    assert rows[0]["label_1"] == records[0]["predictions"][0]["label"] and rows[1]["error"] == "file does not exist"
    assert "  1. " in out and "  3. " not in out


def test_predict_directory_and_list_files(capsys, tmp_path, tiny_model_dir, make_test_video) -> None:
    a = make_test_video("videos/a.mp4")
    b = make_test_video("videos/nested/b.mkv")
    (tmp_path / "videos" / "readme.txt").write_text("not a video list here, ignored by the directory scan")
    code, out, _ = _run(
        capsys, "predict", tmp_path / "videos", "--model", tiny_model_dir, "--workers", "0", "--top-k", "1"
    )
    assert code == 0 and out.index(str(a)) < out.index(str(b))
    listing = tmp_path / "list.txt"
    listing.write_text("# videos\nvideos/a.mp4 3\n\nvideos/nested/b.mkv 1\n")
    table = tmp_path / "list.csv"
    table.write_text(f"path,label\nvideos/a.mp4,x\n{b},y\n")
    for list_file in (listing, table):
        code, out, _ = _run(capsys, "predict", list_file, "--model", tiny_model_dir, "--workers", "0", "--top-k", "1")
        assert code == 0 and str(a) in out and str(b) in out


def test_predict_usage_errors_are_one_line(capsys, tmp_path, tiny_model_dir, make_test_video) -> None:
    video = make_test_video()
    (tmp_path / "empty_dir").mkdir()
    code, out, err = _run(capsys, "predict", tmp_path / "empty_dir", "--model", tiny_model_dir)
    assert code == 2 and _error_lines(err) == err.strip().splitlines() and "no video files" in err

    code, _, err = _run(capsys, "predict", video, "--model", "uniformerv2-b16-k400-k710-8x22")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "did you mean uniformerv2-b16-k400-k710-8x224" in err

    labels = tmp_path / "labels.txt"
    labels.write_text("one\ntwo\nthree\n")
    code, _, err = _run(capsys, "predict", video, "--model", tiny_model_dir, "--labels", labels)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "3 labels, but the model has 5 classes" in err

    code, _, err = _run(capsys, "predict", video, "--checkpoint", tmp_path / "nope.pyth")
    assert code == 2 and "nope.pyth" in err


def test_truncated_checkpoint_is_one_line_error(capsys, tmp_path, make_test_video) -> None:
    state = from_ours(make_tiny_model().state_dict(), "official")
    key = next(k for k in state if k.endswith("c_fc.weight"))
    state[key] = state[key][: state[key].shape[0] // 2]
    del state[next(k for k in state if k.endswith("ln_post.weight") or k.endswith("ln_1.bias"))]
    path = tmp_path / "truncated.pyth"
    torch.save(state, path)
    code, out, err = _run(capsys, "predict", make_test_video(), "--checkpoint", path)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "truncated.pyth" in err


def test_labels_file_renames_classes(capsys, tmp_path, make_test_video) -> None:
    checkpoint = save_official(make_tiny_model(), tmp_path / "tiny.pyth")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(name.upper() for name in TINY_LABELS) + "\n")
    code, out, _ = _run(
        capsys,
        "predict",
        make_test_video(num_frames=10),
        "--checkpoint",
        checkpoint,
        "--labels",
        labels,
        "--views",
        "1x1",
        "--workers",
        "0",
    )
    assert code == 0 and any(name.upper() in out for name in TINY_LABELS)


def test_main_job_offline_gives_one_clear_line(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("UNIFORMERV2_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("UNIFORMERV2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    code, out, err = _run(capsys, "predict", SAMPLE)
    assert code == 2 and out == ""
    errors = _error_lines(err)
    assert (
        len(errors) == 1
        and "offline" in errors[0]
        and "Place the file" in errors[0]
        and str(tmp_path / "cache") in errors[0]
    )


def test_sample_asset_is_small_and_predicts(capsys, tiny_model_dir) -> None:
    assert SAMPLE.stat().st_size < 300_000
    code, out, _ = _run(capsys, "predict", SAMPLE, "--model", tiny_model_dir, "--workers", "0")
    assert code == 0 and out.startswith(str(SAMPLE))


def test_embed_cli_writes_npy_and_index_and_resumes(capsys, tmp_path, tiny_model_dir, make_test_video) -> None:
    videos = [make_test_video("a.mp4"), make_test_video("sub/a.mp4", num_frames=12)]
    out_dir = tmp_path / "features"
    argv = [
        "embed",
        *videos,
        tmp_path / "missing.mp4",
        "--model",
        tiny_model_dir,
        "--out",
        out_dir,
        "--views",
        "1x1",
        "--workers",
        "0",
    ]
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "missing.mp4: file does not exist" in err
    rows = list(csv.DictReader((out_dir / "index.csv").open()))
    assert [r["video"] for r in rows] == [*map(str, videos), str(tmp_path / "missing.mp4")]
    assert rows[0]["file"] != rows[1]["file"]  # same file name in two folders
    first = np.load(out_dir / rows[0]["file"])
    assert first.shape == (64,) and first.dtype == np.float32
    from uniformerv2.inference import embed

    np.testing.assert_allclose(first, embed(videos[0], str(tiny_model_dir), views=(1, 1)).numpy(), atol=1e-6)
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "skipped 2 videos already done" in err


def test_timeline_cli(capsys, tmp_path, tiny_model_dir, make_test_video) -> None:
    video = make_test_video("long.mp4", num_frames=40, fps=20)
    out_json, plot = tmp_path / "t.json", tmp_path / "t.png"
    code, out, _ = _run(
        capsys,
        "timeline",
        video,
        "--model",
        tiny_model_dir,
        "--window",
        "8",
        "--stride",
        "8",
        "--json",
        out_json,
        "--plot",
        plot,
    )
    assert code == 0 and len(out.strip().splitlines()) == 5
    rows = json.loads(out_json.read_text())
    assert [r["start"] for r in rows] == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    code, out, err = _run(capsys, "timeline", tmp_path / "missing.mp4", "--model", tiny_model_dir)
    assert code == 1 and _error_lines(err) == [f"error: {tmp_path / 'missing.mp4'}: file does not exist"]


@pytest.mark.parametrize("command", ["predict", "embed", "timeline", "convert", "flops"])
def test_help_has_examples(capsys, command) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out
