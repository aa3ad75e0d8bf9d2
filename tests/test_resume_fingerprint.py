"""Resumed batch jobs never mix results made with other settings (model, views, top-k, preprocessing)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import make_tiny_model, tiny_preprocess

import uniformerv2.inference.sharding as sharding
from uniformerv2.cli.main import main
from uniformerv2.errors import ResumeError
from uniformerv2.inference import predict
from uniformerv2.inference.sharding import job_fingerprint, read_records, run_sharded, shard_file
from uniformerv2.weights import save_pretrained


class TaggedJob:
    """Records ``{"video", "value": tag}`` and remembers which videos it was asked to do."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.calls: list[list[str]] = []

    def __call__(self, todo: list[str]):
        self.calls.append(list(todo))
        for video in todo:
            yield {"video": video, "value": self.tag}


PATHS = [f"v{i}.mp4" for i in range(4)]


def _interrupted_run(out: Path, fingerprint: dict) -> None:
    """A first run that finished two of the four videos, then was killed."""

    def job(todo):
        yield from TaggedJob("old")(todo[:2])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sharded(PATHS, job, out, fingerprint=fingerprint)


def test_same_settings_resume(tmp_path) -> None:
    out = tmp_path / "preds.json"
    _interrupted_run(out, {"views": [4, 3]})
    job = TaggedJob("new")
    summary = run_sharded(PATHS, job, out, fingerprint={"views": (4, 3)})  # a tuple reads back as the list
    assert job.calls == [PATHS[2:]] and summary.skipped == 2
    assert [r["value"] for r in json.loads(out.read_text())] == ["old", "old", "new", "new"]


def test_other_settings_are_refused_naming_the_difference_and_overwrite(tmp_path) -> None:
    out = tmp_path / "preds.json"
    _interrupted_run(out, {"views": [4, 3], "top_k": 5})
    before = shard_file(out, 0).read_text()
    job = TaggedJob("new")
    with pytest.raises(ResumeError) as info:
        run_sharded(PATHS, job, out, fingerprint={"views": [1, 1], "top_k": 5})
    message = str(info.value)
    assert "--overwrite" in message and "views" in message and "top_k" not in message and "\n" not in message
    assert str(out) in message
    assert job.calls == [] and shard_file(out, 0).read_text() == before and not out.exists()


def test_overwrite_starts_fresh_and_drops_shards_of_a_larger_earlier_world(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sharding, "barrier", lambda world: None)
    out = tmp_path / "preds.json"
    for rank in (0, 1, 2):  # an earlier run on three ranks, other settings
        run_sharded(PATHS, TaggedJob("old"), out, rank=rank, world_size=3, fingerprint={"model": "a"})
    job = TaggedJob("new")
    summary = run_sharded(PATHS, job, out, fingerprint={"model": "b"}, overwrite=True)
    assert job.calls == [PATHS] and summary.skipped == 0
    assert [r["value"] for r in json.loads(out.read_text())] == ["new"] * 4
    assert not shard_file(out, 1).exists() and not shard_file(out, 2).exists()
    again = TaggedJob("again")
    assert run_sharded(PATHS, again, out, fingerprint={"model": "b"}).skipped == 4 and again.calls == []


def test_shards_of_an_earlier_version_without_settings_are_refused(tmp_path) -> None:
    out = tmp_path / "preds.json"
    shard_file(out, 0).write_text(json.dumps({"video": PATHS[0], "value": "legacy"}) + "\n")
    with pytest.raises(ResumeError, match="--overwrite"):
        run_sharded(PATHS, TaggedJob("new"), out, fingerprint={"views": [1, 1]})
    assert read_records(out)[PATHS[0]]["value"] == "legacy"


def test_fingerprint_identifies_weights_labels_and_preprocessing() -> None:
    model = make_tiny_model()
    base = job_fingerprint(model, "predict", views=(1, 1), top_k=5)
    assert base == job_fingerprint(make_tiny_model(), "predict", views=(1, 1), top_k=5)
    assert base != job_fingerprint(make_tiny_model(seed=1), "predict", views=(1, 1), top_k=5)
    assert base != job_fingerprint(model, "predict", views=(2, 1), top_k=5)
    assert base != job_fingerprint(model, "predict", views=(1, 1), top_k=3)
    assert base != job_fingerprint(model, "embed", views=(1, 1), top_k=5)
    relabelled = make_tiny_model()
    relabelled.pretrained_cfg["labels"] = list(reversed(relabelled.pretrained_cfg["labels"]))
    assert base != job_fingerprint(relabelled, "predict", views=(1, 1), top_k=5)
    other_mean = make_tiny_model()
    other_mean.pretrained_cfg["preprocess"] = tiny_preprocess(mean=(0.5, 0.5, 0.5))
    assert base != job_fingerprint(other_mean, "predict", views=(1, 1), top_k=5)
    assert base != job_fingerprint(model, "predict", views=(1, 1), top_k=5, decode_short_side=40)
    json.dumps(base, allow_nan=False)  # stored in the shard files as strict JSON


def _predict(capsys, *argv) -> tuple[int, str]:
    code = main(["predict", *map(str, argv), "--workers", "0"])
    return code, capsys.readouterr().err


def _with(argv: list, flag: str, value: object) -> list:
    """``argv`` with ``flag`` set to ``value`` (replaced or appended)."""
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    return argv


@pytest.mark.parametrize(
    ("flag", "value", "changed"),
    [
        ("--views", "2x1", "preprocess.num_clips"),
        ("--top-k", "2", "top_k"),
        ("--decode-short-side", "40", "decode_short_side"),
        ("--model", "OTHER", "weights"),
    ],
    ids=["views", "top-k", "preprocessing", "model"],
)
def test_predict_rerun_with_other_settings_refuses_then_overwrites(
    capsys, tmp_path, tiny_model_dir, make_test_video, flag, value, changed
) -> None:
    other_dir = save_pretrained(make_tiny_model(seed=1), tmp_path / "other_model")
    videos = [make_test_video("a.mp4"), make_test_video("b.mp4", num_frames=16)]
    out = tmp_path / "preds.json"
    first = ["--model", tiny_model_dir, "--views", "1x1", "--top-k", "3", "--json", out]
    assert _predict(capsys, *videos, *first)[0] == 0
    before = out.read_text()
    settings = _with(first, flag, other_dir if value == "OTHER" else value)
    code, err = _predict(capsys, *videos, *settings)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "--overwrite" in err
    assert changed in err
    assert out.read_text() == before
    code, err = _predict(capsys, *videos, *settings, "--overwrite")
    assert code == 0, err
    records = json.loads(out.read_text())
    opts = dict(zip(settings[::2], settings[1::2], strict=True))
    expected = predict(
        videos,
        str(opts["--model"]),
        views=opts["--views"],
        top_k=int(opts["--top-k"]),
        decode_short_side=int(opts["--decode-short-side"]) if "--decode-short-side" in opts else None,
    )
    assert [r["predictions"] for r in records] == expected


def test_embed_rerun_with_other_views_is_refused(capsys, tmp_path, tiny_model_dir, make_test_video) -> None:
    video = make_test_video("a.mp4")
    argv = ["embed", str(video), "--model", str(tiny_model_dir), "--out", str(tmp_path / "f"), "--workers", "0"]
    assert main([*argv, "--views", "1x1"]) == 0
    capsys.readouterr()
    assert main([*argv, "--views", "1x3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--views", "1x3", "--overwrite"]) == 0
    rows = list(csv.DictReader((tmp_path / "f" / "index.csv").open()))
    assert [r["video"] for r in rows] == [str(video)]
