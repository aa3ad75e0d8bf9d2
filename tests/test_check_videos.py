"""``check-videos``: per-file report, list files, JSON/CSV output and exit status."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from videogen import corrupt_bytes, make_audio, make_video, truncate, write_frame_folder

from uniformerv2.cli.main import main
from uniformerv2.errors import VideoDecodeError
from uniformerv2.video import check_videos, open_video
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


# -- full decode: what training and prediction would hit ------------------------------------


def _decodable_frames(path) -> int:
    """Frames FFmpeg decodes from ``path`` without error, counted independently of the package."""
    import av

    count = 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            try:
                count += len(packet.decode())
            except av.error.FFmpegError:
                pass
    return count


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    faststart = {"movflags": "faststart"}  # index first, so a cut file still opens
    good = make_video(root / "good.mp4", 60, 160, 120, gop=10, container_options=faststart)
    corrupt = corrupt_bytes(shutil.copy(good, root / "corrupt.mp4"), 0.5, 200)
    cut = truncate(good, 0.6, root / "cut.mp4")
    cut_mkv = truncate(make_video(root / "good.mkv", 60, 160, 120, gop=10), 0.6, root / "cut.mkv")
    return {"good": good, "corrupt": corrupt, "cut": cut, "cut_mkv": cut_mkv}


def test_full_check_counts_decodable_frames_next_to_the_header(damaged):
    row = check_video(damaged["good"])
    assert row["ok"] and (row["decodable"], row["header_frames"], row["frames"]) == (60, 60, 60)


def test_corrupt_packets_mid_file(damaged):
    path = damaged["corrupt"]
    with pytest.raises(VideoDecodeError):  # what prediction hits: the full clip does not decode
        reader = open_video(path)
        reader.get_frames(list(range(reader.num_frames)))
    assert check_video(path, fast=True)["ok"]  # the header check alone does not see it
    row = check_video(path)
    assert not row["ok"] and "corrupt" in row["error"]
    assert row["decodable"] == _decodable_frames(path) < 60 and row["header_frames"] == 60


@pytest.mark.parametrize("name", ["cut", "cut_mkv"])
def test_truncated_file_whose_header_promises_more(damaged, name):
    path = damaged[name]
    assert check_video(path, fast=True)["ok"]
    row = check_video(path)
    assert not row["ok"] and "truncated" in row["error"]
    assert row["decodable"] == _decodable_frames(path)
    assert 0 < row["decodable"] < 60 and row["header_frames"] in (None, 60)


def test_frame_folder_gaps_and_bad_images(tmp_path):
    gap = write_frame_folder(tmp_path / "gap", 8)
    (gap / "img_00005.jpg").unlink()
    row = check_video(gap)
    assert not row["ok"] and "img_00005.jpg" in row["error"] and "missing" in row["error"]
    assert (row["decodable"], row["header_frames"]) == (7, 8)

    broken = write_frame_folder(tmp_path / "broken", 6)
    data = (broken / "img_00003.jpg").read_bytes()
    (broken / "img_00003.jpg").write_bytes(data[: len(data) // 3])  # a JPEG cut short
    (broken / "img_00004.jpg").write_bytes(b"not an image")
    row = check_video(broken)
    assert not row["ok"] and "img_00003.jpg" in row["error"] and "2 frame images" in row["error"]
    assert (row["decodable"], row["header_frames"]) == (4, 6)

    resized = write_frame_folder(tmp_path / "resized", 4)
    write_frame_folder(tmp_path / "other", 2, width=32, height=24)
    shutil.copy(tmp_path / "other" / "img_00002.jpg", resized / "img_00002.jpg")
    row = check_video(resized)
    assert not row["ok"] and "img_00002.jpg" in row["error"] and "32x24" in row["error"]
    with pytest.raises(VideoDecodeError, match="img_00002.jpg"):  # prediction gets the same one-line error
        open_video(resized).get_frames([0, 1, 2, 3])
    assert check_video(write_frame_folder(tmp_path / "fine", 5))["ok"]


def test_cli_fast_and_full(damaged, capsys):
    assert main(["check-videos", str(damaged["corrupt"]), "--fast", "--no-progress"]) == 0
    assert main(["check-videos", str(damaged["corrupt"]), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "corrupt" in out and "header" in out


def test_cli_outputs_checked_before_the_work(files, tmp_path, capsys, monkeypatch):
    import uniformerv2.video.check as check

    monkeypatch.setattr(check, "check_video", lambda *a, **k: pytest.fail("checked videos before refusing"))
    same = tmp_path / "r.out"
    assert main(["check-videos", str(files["good"]), "--json", str(same), "--csv", str(same)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "same file" in err
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["check-videos", str(files["good"]), "--json", str(blocker / "sub" / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(blocker) in err


def test_cli_json_is_strict_and_written_atomically(tmp_path, capsys):
    folder = write_frame_folder(tmp_path / "frames", 3)  # fps unknown: NaN must not reach the JSON
    out = tmp_path / "new" / "dir" / "r.json"
    assert main(["check-videos", str(folder), "--json", str(out), "--no-progress"]) == 0
    rows = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert rows[0]["fps"] is None and rows[0]["decodable"] == 3
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]


@pytest.mark.parametrize(
    "name,kw",
    [
        ("opengop.mkv", dict(gop=10, bframes=3, options={"open_gop": "1"})),
        ("vp9.webm", dict(codec="libvpx-vp9", gop=12)),
        ("vfr.mp4", dict(vfr=True, gop=10)),
        ("bframes.ts", dict(gop=250, bframes=3)),
        ("mjpeg.avi", dict(codec="mjpeg")),
    ],
)
def test_full_check_passes_sound_videos(tmp_path, name, kw):
    row = check_video(make_video(tmp_path / name, 30, **kw))
    assert row["ok"], row["error"]
    assert row["decodable"] == row["frames"] == 30 and row["header_frames"] in (30, None)


@pytest.mark.slow  # starts two spawned processes
def test_worker_processes_give_the_same_rows_in_order(files, damaged):
    paths = [str(p) for p in (damaged["corrupt"], files["good"], files["missing"], damaged["cut_mkv"], files["short"])]
    rows = check_videos(paths, min_frames=8, workers=2)
    assert rows == check_videos(paths, min_frames=8)
    assert [r["path"] for r in rows] == paths and [r["ok"] for r in rows] == [False, True, False, False, False]
