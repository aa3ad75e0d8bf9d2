"""``check-videos``: per-file report, list files, JSON/CSV output and exit status."""

from __future__ import annotations

import csv
import json

import pytest
from videogen import make_audio, make_video

from uniformerv2.cli.main import main
from uniformerv2.video import check_videos
from uniformerv2.video.check import check_video


@pytest.fixture()
def files(tmp_path):
    good = make_video(tmp_path / "good.mp4", 12, 64, 48)
    short = make_video(tmp_path / "short.webm", 3, 32, 24, codec="libvpx-vp9")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    audio = make_audio(tmp_path / "audio.m4a")
    return {
        "good": good,
        "short": short,
        "empty": empty,
        "text": text,
        "audio": audio,
        "missing": tmp_path / "missing.mp4",
    }


def test_check_video_fields(files):
    row = check_video(files["good"])
    assert row["ok"] and row["error"] is None
    assert (row["frames"], row["width"], row["height"], row["codec"], row["fps"]) == (12, 64, 48, "h264", 25.0)
    assert row["duration"] == pytest.approx(12 / 25)


def test_check_videos_reasons(files):
    rows = {r["path"]: r for r in check_videos([str(p) for p in files.values()], min_frames=8)}
    assert rows[str(files["good"])]["ok"]
    assert "too short" in rows[str(files["short"])]["error"]
    assert "empty" in rows[str(files["empty"])]["error"]
    assert "no video stream" in rows[str(files["audio"])]["error"]
    assert "does not exist" in rows[str(files["missing"])]["error"]
    assert not rows[str(files["text"])]["ok"]


def test_cli_exit_codes_and_outputs(files, tmp_path, capsys):
    assert main(["check-videos", str(files["good"]), "--no-progress"]) == 0
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    lst = tmp_path / "list.csv"
    lst.write_text(f"{files['good'].name},0\n{files['empty'].name},1\n")
    code = main(
        [
            "check-videos",
            str(lst),
            "--root",
            str(tmp_path),
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
            "--no-progress",
        ]
    )
    assert code == 1
    printed = capsys.readouterr().out
    assert "64x48" in printed and "BAD: file is empty" in printed and "1 of 2 videos ok" in printed
    rows = json.loads(out_json.read_text())
    assert [r["ok"] for r in rows] == [True, False]
    with open(out_csv, newline="") as f:
        assert [r["ok"] for r in csv.DictReader(f)] == ["True", "False"]
    assert main(["check-videos", str(tmp_path), "--min-frames", "5", "--no-progress"]) == 1  # folder scan


def test_cli_help_shows_example(capsys):
    with pytest.raises(SystemExit):
        main(["check-videos", "--help"])
    assert "examples:" in capsys.readouterr().out
