"""Input collection: paths, list files and directories become videos by one rule everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
from videogen import make_video, write_frame_folder

from uniformerv2.cli.main import main
from uniformerv2.errors import InputError, UniFormerV2Error
from uniformerv2.video.inputs import collect_videos


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


def test_list_entries_relative_to_the_list_or_root(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "val.csv").write_text(f"a/b.mp4,12\nc d.mp4,3\n{tmp_path / 'abs.mp4'},1\n")
    assert collect_videos([lists / "val.csv"]) == [
        str(lists / "a/b.mp4"),
        str(lists / "c d.mp4"),
        str(tmp_path / "abs.mp4"),
    ]
    assert collect_videos([lists / "val.csv"], root="/data")[:2] == ["/data/a/b.mp4", "/data/c d.mp4"]


def test_txt_list_layouts(tmp_path):
    _touch(tmp_path / "with space.mp4")
    (tmp_path / "frames_dir").mkdir()
    (tmp_path / "val.txt").write_text("# comment\nx/y.mp4 5\nframes_dir 40 7\nwith space.mp4 3\nk.mp4,2\n\n")
    assert collect_videos([tmp_path / "val.txt"]) == [
        str(tmp_path / name) for name in ("x/y.mp4", "frames_dir", "with space.mp4", "k.mp4")
    ]


@pytest.mark.parametrize("header", ["", "path,label\n"])
def test_csv_with_utf8_bom(tmp_path, header):
    lst = tmp_path / "excel.csv"
    lst.write_bytes(("\ufeff" + header + "vidé 1.mp4,0\nb.mp4,1\n").encode("utf-8"))
    assert collect_videos([lst]) == [str(tmp_path / "vidé 1.mp4"), str(tmp_path / "b.mp4")]


def test_frame_folder_given_directly_is_one_video(tmp_path):
    folder = write_frame_folder(tmp_path / "frames", 3)
    assert collect_videos([folder]) == [str(folder)]


def test_directory_of_videos_and_frame_folders(tmp_path):
    _touch(tmp_path / "data" / "b.mp4")
    _touch(tmp_path / "data" / "sub" / "a.webm")
    _touch(tmp_path / "data" / "notes.md")
    write_frame_folder(tmp_path / "data" / "c_frames", 2)
    assert collect_videos([tmp_path / "data"]) == [
        str(tmp_path / "data" / name) for name in ("b.mp4", "c_frames", "sub/a.webm")
    ]


def test_plain_paths_kept_in_order(tmp_path):
    assert collect_videos(["z.mp4", tmp_path / "missing.mkv"]) == ["z.mp4", str(tmp_path / "missing.mkv")]


@pytest.mark.parametrize(
    "setup,match",
    [
        (lambda p: (p / "empty").mkdir() or p / "empty", "no video files"),
        (lambda p: (p / "empty.txt").write_text("\n# nothing\n") and p / "empty.txt", "names no videos"),
        (lambda p: (p / "empty.csv").write_text("path,label\n") and p / "empty.csv", "names no videos"),
        (lambda p: (p / "bin.txt").write_bytes(np.arange(256, dtype=np.uint8).tobytes()) and p / "bin.txt", "binary"),
        (lambda p: (p / "latin.csv").write_bytes("caf\xe9.mp4,1\n".encode("latin-1")) and p / "latin.csv", "UTF-8"),
        (lambda p: p / "missing.csv", "does not exist"),
    ],
)
def test_bad_inputs_are_one_error_naming_the_file(tmp_path, setup, match):
    path = setup(tmp_path)
    with pytest.raises(InputError, match=match) as info:
        collect_videos([path])
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, UniFormerV2Error)


def test_no_inputs_is_an_error():
    with pytest.raises(InputError, match="no videos"):
        collect_videos([])


@pytest.mark.parametrize("command", [["predict"], ["embed", "--out", "OUT"], ["check-videos", "--no-progress"]])
def test_cli_empty_list_exits_2_with_one_line(tmp_path, capsys, command):
    lst = tmp_path / "empty.csv"
    lst.write_text("")
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    assert main([args[0], str(lst), *args[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(lst) in err and "\n" not in err


def test_check_videos_uses_the_same_rules(tmp_path, capsys):
    video = make_video(tmp_path / "clip.mp4", 4)
    folder = write_frame_folder(tmp_path / "frames", 3)
    lst = tmp_path / "lists" / "all.csv"
    lst.parent.mkdir()
    lst.write_bytes(b"\xef\xbb\xbfpath,label\n../clip.mp4,0\n../frames,1\n")
    assert main(["check-videos", str(lst), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 videos ok" in out
    assert main(["check-videos", str(folder), str(video), "--no-progress"]) == 0


def test_training_lists_read_like_inference_lists(tmp_path):
    from uniformerv2.train.config import DataConfig
    from uniformerv2.train.data import read_annotations

    data = DataConfig(root=str(tmp_path), check_files=False)
    lst = tmp_path / "train.csv"
    lst.write_bytes("\ufeffclip a.mp4,1\nb.mp4,0\n".encode())
    assert [(a.path, a.label) for a in read_annotations(lst, data, 2)] == [
        (str(tmp_path / "clip a.mp4"), 1),
        (str(tmp_path / "b.mp4"), 0),
    ]
    binary = tmp_path / "train.bin.csv"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(UniFormerV2Error, match="binary") as info:
        read_annotations(binary, data, 2)
    assert str(binary) in str(info.value)


def test_predict_takes_a_frame_folder_directly(tmp_path, capsys, tiny_model_dir):
    folder = write_frame_folder(tmp_path / "frames", 6)
    out = tmp_path / "preds.json"
    assert main(["predict", str(folder), "--model", str(tiny_model_dir), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and rows[0]["video"] == str(folder) and not rows[0].get("error")
