"""CLI option errors, outputs checked before the work, devices, the last-resort guard: one line, no traceback."""

from __future__ import annotations

import csv
import sys

import pytest
import torch

import uniformerv2.cli.flops as flops_cli
from uniformerv2.cli.main import main
from uniformerv2.errors import DeviceError
from uniformerv2.runtime import resolve_device

INTERNAL_NAMES = ("parse_views", "positive_int", "fps_override", "labels=", "Traceback", "invalid int value")


def _run(capsys, *argv: object) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of the CLI, argparse's own exits included."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    """The single error line of ``err`` (argparse's usage lines aside)."""
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, err
    assert not any(name in err for name in INTERNAL_NAMES), err
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "V", "--top-k", "0"],
        ["predict", "V", "--top-k", "-2"],
        ["predict", "V", "--views", "4"],
        ["predict", "V", "--views", "4x2"],
        ["predict", "V", "--workers", "-1"],
        ["predict", "V", "--batch-size", "0"],
        ["predict", "V", "--decode-short-side", "0"],
        ["embed", "V", "--out", "O", "--decode-short-side", "-5"],
        ["timeline", "V", "--fps", "0"],
        ["timeline", "V", "--fps", "-1"],
        ["timeline", "V", "--fps", "nan"],
        ["timeline", "V", "--fps", "inf"],
        ["timeline", "V", "--batch-size", "0"],
        ["timeline", "V", "--top-k", "0"],
        ["timeline", "V", "--window", "0"],
        ["timeline", "V", "--stride-seconds", "-1"],
        ["flops", "--frames", "-3"],
        ["flops", "--frames", "0"],
        ["flops", "--size", "0"],
        ["flops", "--size", "abc"],
    ],
)
def test_bad_option_values_are_usage_errors_in_the_users_terms(capsys, tmp_path, argv) -> None:
    argv = [str(tmp_path / a) if a in ("V", "O") else a for a in argv]
    code, out, err = _run(capsys, *argv)
    line = _error_line(err)
    assert code == 2 and out == ""
    option = next(a for a in argv if a.startswith("--") and a != "--out")
    assert f"argument {option}" in line, line


@pytest.mark.parametrize("device", ["garbage", "tpu", "cuda", "cuda:7", "mps"])
@pytest.mark.parametrize("command", ["predict", "embed", "timeline"])
def test_unavailable_devices_are_one_line(capsys, tmp_path, tiny_model_dir, make_test_video, command, device) -> None:
    if device.startswith("cuda") and torch.cuda.device_count() > 7 or device == "mps" and resolve_mps():
        pytest.skip("this machine has the device")
    extra = ["--out", tmp_path / "f"] if command == "embed" else []
    code, out, err = _run(capsys, command, make_test_video(), "--model", tiny_model_dir, "--device", device, *extra)
    line = _error_line(err)
    assert code == 2 and out == "" and line.startswith("error: ") and repr(device) in line


def resolve_mps() -> bool:
    try:
        return resolve_device("mps").type == "mps"
    except DeviceError:
        return False


def test_training_on_a_missing_gpu_is_a_package_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    from uniformerv2.train.distributed import init_distributed

    with pytest.raises(DeviceError, match="not available"):
        init_distributed("cuda")


def test_plot_without_matplotlib_is_refused_before_the_work(
    capsys, monkeypatch, tmp_path, tiny_model_dir, make_test_video
):
    video = make_test_video(num_frames=12)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # importing matplotlib now raises ImportError
    code, out, err = _run(capsys, "timeline", video, "--model", tiny_model_dir, "--plot", tmp_path / "t.png")
    assert code == 2 and out == "" and "needs matplotlib: pip install" in _error_line(err)


@pytest.mark.parametrize("name", ["t.xyz", "t"])
def test_plot_of_an_unknown_image_type_is_refused_before_the_work(
    capsys, tmp_path, tiny_model_dir, make_test_video, name
):
    pytest.importorskip("matplotlib")
    video = make_test_video(num_frames=12)
    code, out, err = _run(capsys, "timeline", video, "--model", tiny_model_dir, "--plot", tmp_path / name)
    assert code == 2 and out == "" and "png" in _error_line(err)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "VIDEO", "--json", "FILE/out.json"],
        ["predict", "VIDEO", "--csv", "FILE/sub/out.csv"],
        ["predict", "VIDEO", "--json", "DIR"],
        ["predict", "VIDEO", "--json", "DIR/same.json", "--csv", "DIR/same.json"],
        ["predict", "VIDEO", "--json", ""],
        ["embed", "VIDEO", "--out", "FILE"],
        ["timeline", "VIDEO", "--json", "FILE/t.json"],
    ],
    ids=["parent-is-file", "grandparent-is-file", "is-dir", "same-file", "empty", "embed-out-file", "timeline"],
)
def test_outputs_that_cannot_be_written_are_refused_before_the_work(
    capsys, tmp_path, tiny_model_dir, make_test_video, argv
) -> None:
    places = {"VIDEO": str(make_test_video()), "FILE": str(tmp_path / "a_file"), "DIR": str(tmp_path / "a_dir")}
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "a_dir").mkdir()
    for key, value in places.items():
        argv = [a.replace(key, value) for a in argv]
    code, out, err = _run(
        capsys, *argv, "--model", tiny_model_dir, *(["--workers", "0"] if argv[0] != "timeline" else [])
    )
    assert code == 2 and out == "", err  # nothing was classified before the refusal
    assert _error_line(err).startswith("error: ")


def test_empty_input_list_is_a_usage_error(capsys, tmp_path, tiny_model_dir) -> None:
    listing = tmp_path / "videos.txt"
    listing.write_text("# nothing yet\n\n")
    code, out, err = _run(capsys, "predict", listing, "--model", tiny_model_dir)
    assert code == 2 and out == "" and str(listing) in _error_line(err)


def test_convert_to_an_empty_name_is_an_error(capsys, tmp_path, tiny_model_dir, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "convert", tiny_model_dir, "")
    assert code == 2 and "empty" in _error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_model"]  # nothing written into the working directory


def test_batch_with_a_240_byte_name_finishes_every_other_video(capsys, tmp_path, tiny_model_dir, make_test_video):
    long_name = "x" * 236 + ".mp4"
    videos = [make_test_video(long_name, num_frames=10), make_test_video("short.mp4", num_frames=10)]
    missing = tmp_path / "missing.mp4"
    argv = ["embed", *videos, missing, "--model", tiny_model_dir, "--out", tmp_path / "f", "--workers", "0"]
    code, _, err = _run(capsys, *argv, "--views", "1x1")
    assert code == 1 and _error_line(err.split("\n", 1)[1]) == f"error: {missing}: file does not exist"
    rows = list(csv.DictReader((tmp_path / "f" / "index.csv").open()))
    assert [r["video"] for r in rows] == [*map(str, videos), str(missing)]
    assert all((tmp_path / "f" / r["file"]).is_file() and len(r["file"].encode()) <= 255 for r in rows[:2])


def test_unexpected_exceptions_are_one_line_with_a_debug_hint(capsys, monkeypatch) -> None:
    def broken(spec):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(flops_cli, "measure", broken)
    code, out, err = _run(capsys, "flops", "uniformerv2_b16")
    assert code == 1 and out == ""
    assert (
        err.strip()
        == "error: unexpected failure (RuntimeError: boom); rerun with UNIFORMERV2_DEBUG=1 for the traceback"
    )
    monkeypatch.setenv("UNIFORMERV2_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["flops", "uniformerv2_b16"])


def test_ctrl_c_prints_interrupted_and_exits_130(capsys, monkeypatch) -> None:
    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(flops_cli, "measure", interrupted)
    code, out, err = _run(capsys, "flops", "uniformerv2_b16")
    assert (code, out, err.strip()) == (130, "", "interrupted")


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", ""],
        ["predict", "VIDEO", "--model", ""],
        ["predict", "VIDEO", "--checkpoint", " "],
        ["timeline", "VIDEO", "--model", ""],
    ],
    ids=["input", "model", "checkpoint", "timeline-model"],
)
def test_empty_names_are_usage_errors_not_defaults(capsys, monkeypatch, tmp_path, make_test_video, argv) -> None:
    monkeypatch.chdir(make_test_video().parent)  # an empty input must not mean "this directory"
    monkeypatch.setenv("UNIFORMERV2_OFFLINE", "1")  # nor an empty model the default one
    argv = [str(make_test_video()) if a == "VIDEO" else a for a in argv]
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == "" and "empty" in _error_line(err)


# ------------------------------------------------------------------ hostile inputs found by trying the CLI


def _special_files(tmp_path) -> dict[str, tuple[str, str]]:
    """Path -> expected cause of files that are not regular files."""
    import os

    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(tmp_path / "loop2.mp4")
    (tmp_path / "loop2.mp4").symlink_to(loop)
    return {
        "fifo": (str(fifo), "not a regular file (a named pipe)"),
        "device": ("/dev/urandom", "not a regular file (a character device)"),
        "loop": (str(loop), "symbolic link loop"),
    }


@pytest.mark.parametrize("kind", ["fifo", "device", "loop"])
def test_special_files_as_videos_say_what_they_are(capsys, tmp_path, tiny_model_dir, make_test_video, kind) -> None:
    path, cause = _special_files(tmp_path)[kind]
    good = make_test_video()
    code, out, err = _run(capsys, "predict", good, path, "--model", tiny_model_dir, "--workers", "0", "--views", "1x1")
    assert code == 1 and str(good) in out
    assert err.strip().splitlines()[-1] == f"error: {path}: {cause}"


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_special_files_as_checkpoints_say_what_they_are(capsys, tmp_path, make_test_video, kind) -> None:
    path, cause = _special_files(tmp_path)[kind]
    code, out, err = _run(capsys, "predict", make_test_video(), "--checkpoint", path)
    assert code == 2 and out == "" and _error_line(err) == f"error: {path}: {cause}"


def test_control_characters_in_file_names_stay_on_one_line(capsys, tmp_path, tiny_model_dir, make_test_video) -> None:
    missing = tmp_path / "two\nlines.mp4"
    argv = ["predict", make_test_video(), missing, "--model", tiny_model_dir, "--workers", "0", "--views", "1x1"]
    code, out, err = _run(capsys, *argv)
    escaped = str(missing).replace("\n", "\\n")
    assert code == 1 and err.strip().splitlines()[-1] == f"error: {escaped}: file does not exist"


def test_an_existing_special_file_as_output_is_refused_and_kept(capsys, tmp_path, tiny_model_dir, make_test_video):
    import os
    import stat

    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    code, out, err = _run(capsys, "predict", make_test_video(), "--model", tiny_model_dir, "--json", fifo)
    assert code == 2 and out == "" and str(fifo) in _error_line(err) and "not a regular file" in err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # not replaced by a regular file


@pytest.mark.parametrize(
    "argv, words",
    [
        (["predict", "VIDEO", "--views", "99999999999x3"], ["argument --views", "at most"]),
        (["timeline", "VIDEO", "--window", "4", "--window-seconds", "1"], ["--window", "--window-seconds"]),
        (["timeline", "VIDEO", "--stride", "4", "--stride-seconds", "1"], ["--stride", "--stride-seconds"]),
        (["export", "MODEL", "OUT/m.onnx", "--frames", "0"], ["argument --frames"]),
        (["export", "MODEL", "OUT/m.onnx", "--size", "0"], ["argument --size"]),
        (["export", "MODEL", "FILE/m.onnx"], ["FILE", "not a directory"]),
        (["export", "MODEL", "OUT"], ["OUT", "is a directory"]),
        (["convert", "MODEL", "FILE/m.pyth"], ["FILE", "not a directory"]),
        (["demo", "--port", "-1"], ["argument --port"]),
        (["demo", "--port", "99999"], ["argument --port"]),
        (["flops", "uniformerv2_b16", "--size", "33"], ["--size", "16"]),
        (["predict", "VIDEO", "--labels", "OUT/none.txt"], ["none.txt", "no such label file"]),
        (["predict", "VIDEO", "--labels", "OUT"], ["OUT", "is a directory"]),
        (["eval", "LIST", "--plot", "OUT/c.xyz"], ["c.xyz", "png"]),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) and v and v[0].startswith("argument") else None,
)
def test_more_usage_errors_are_one_line_before_the_work(
    capsys, tmp_path, tiny_model_dir, make_test_video, argv, words
) -> None:
    video = make_test_video()
    listing = tmp_path / "list.csv"
    listing.write_text(f"{video},0\n")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "out").mkdir()
    places = {"VIDEO": video, "MODEL": tiny_model_dir, "FILE": tmp_path / "a_file", "OUT": tmp_path / "out"}
    places["LIST"] = listing
    argv = [a.replace(key, str(value)) if key in a else a for a in argv for key, value in [_key(a, places)]]
    if argv[0] in ("predict", "embed", "timeline", "eval"):
        argv += ["--model", str(tiny_model_dir)]
    code, out, err = _run(capsys, *argv)
    line = _error_line(err)
    assert code == 2 and out == "", err
    for word in words:
        assert str(places.get(word, word)) in line, line
    assert list((tmp_path / "out").iterdir()) == []  # nothing was written


def _key(arg: str, places: dict) -> tuple[str, object]:
    return next(((k, v) for k, v in places.items() if arg.startswith(k)), ("\0", ""))


def test_warnings_and_resume_refusals_speak_in_options(capsys, caplog, tmp_path, make_test_video) -> None:
    from conftest import make_tiny_model, save_official

    checkpoint = save_official(make_tiny_model(), tmp_path / "tiny.pyth")
    argv = ["predict", make_test_video(), "--checkpoint", checkpoint, "--json", tmp_path / "p.json", "--workers", "0"]
    first = _run(capsys, *argv, "--views", "1x1")
    code, out, err = _run(capsys, *argv, "--views", "2x1")
    shown = caplog.text + first[2] + err  # warnings go through logging
    assert first[0] == 0 and "--labels FILE" in shown and code == 2 and "--overwrite" in err
    assert not any(name in shown for name in ("labels=", "overwrite=True)")), shown


def test_train_configuration_errors_are_one_line_exit_2(capsys, tmp_path):
    """Unreadable configs, missing or binary lists and an output path under a file: exit 2, one line."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: {width: [1, 2\n")
    binary = tmp_path / "list.txt"
    binary.write_bytes(b"\x00\xff\xf8garbage")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    videos = tmp_path / "train.csv"
    videos.write_text("missing.mp4,0\n")
    tiny = ["--preset", "debug_tiny", "device=cpu"]
    cases = {
        "broken.yaml": ["train", "--config", broken, "--print-config"],
        "nothere.yaml": ["train", "--config", tmp_path / "nothere.yaml"],
        "nothere.csv": ["train", *tiny, f"data.train_list={tmp_path / 'nothere.csv'}", f"output_dir={tmp_path / 'r'}"],
        "list.txt": ["train", *tiny, f"data.train_list={binary}", f"output_dir={tmp_path / 'r2'}"],
        "a_file": ["train", *tiny, f"data.train_list={videos}", f"output_dir={blocker / 'run'}"],
    }
    for name, argv in cases.items():
        code, _, err = _run(capsys, *argv)
        assert code == 2, (name, err)
        line = _error_line(err)
        assert name in line and "Traceback" not in err, (name, err)


def test_check_videos_rows_stay_one_line_and_min_frames_is_checked(capsys, tmp_path):
    """A newline in a file name is escaped in the table; --min-frames below 1 is a usage error."""
    odd = tmp_path / "new\nline.mp4"
    odd.write_bytes(b"")
    code, out, _ = _run(capsys, "check-videos", odd, "--no-progress")
    assert code == 1
    assert [line for line in out.splitlines() if "line.mp4" in line] == [
        next(line for line in out.splitlines() if "new\\nline.mp4" in line)
    ]
    code, _, err = _run(capsys, "check-videos", odd, "--min-frames", "-3")
    assert code == 2 and "--min-frames" in err
