"""Files the package writes: umask permissions, flushed renames, full disks, long names, stale temporaries."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

import uniformerv2.atomic as atomic
from uniformerv2.atomic import (
    atomic_savefig,
    atomic_torch_save,
    atomic_write,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temps,
)
from uniformerv2.cli.main import main
from uniformerv2.errors import OutputError, UniFormerV2Error

REPO = Path(__file__).resolve().parents[1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set a umask for the test and restore the previous one."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_get_the_umask_permissions(tmp_path, umask, mask) -> None:
    umask(mask)
    expected = 0o666 & ~mask
    written = [
        atomic_write_text(tmp_path / "a.txt", "x"),
        atomic_write_json(tmp_path / "a.json", {"a": 1}),
        atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "c.pt"),
    ]
    with open(tmp_path / "plain.txt", "w") as handle:  # what a plain open gives: the reference
        handle.write("x")
    assert _mode(tmp_path / "plain.txt") == expected
    for path in written:
        assert _mode(path) == expected, path


def test_model_directory_files_get_the_umask_permissions(tmp_path, umask) -> None:
    from uniformerv2.weights import save_pretrained

    umask(0o022)
    out = save_pretrained(make_tiny_model(), tmp_path / "model")
    files = [p for p in Path(out).iterdir() if p.is_file()]
    assert files and all(_mode(p) == 0o644 for p in files), {p.name: oct(_mode(p)) for p in files}


def test_write_is_flushed_before_the_rename_and_the_directory_after(tmp_path, monkeypatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_text(tmp_path / "x.txt", "hello")
    assert events == ["file", "rename", "dir"]
    assert (tmp_path / "x.txt").read_text() == "hello"


def test_full_disk_is_one_clear_error_and_the_old_file_survives(tmp_path) -> None:
    target = atomic_write_text(tmp_path / "out" / "preds.json", "old")

    def full(tmp: str) -> None:
        Path(tmp).write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=f"no space left on {tmp_path / 'out'}") as info:
        atomic_write(target, full)
    assert isinstance(info.value, UniFormerV2Error) and "\n" not in str(info.value)
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["preds.json"]


@pytest.mark.parametrize("length", [200, 240, 255])
def test_very_long_target_names(tmp_path, length) -> None:
    name = "é" * ((length - 4) // 2) + "x" * ((length - 4) % 2) + ".npy"
    assert len(name.encode()) == length
    path = atomic_write(tmp_path / name, lambda tmp: np.save(tmp, np.arange(3)))
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert os.listdir(tmp_path) == [name]


def test_json_is_strict_even_with_nan_scores(tmp_path) -> None:
    path = atomic_write_json(tmp_path / "s.json", [{"score": float("nan")}, {"score": float("inf")}, {"score": 0.5}])

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    assert json.loads(path.read_text(), parse_constant=refuse) == [{"score": None}, {"score": None}, {"score": 0.5}]


def test_csv_writer(tmp_path) -> None:
    path = atomic_write_csv(tmp_path / "t.csv", [{"a": 1, "b": "x,y"}, {"a": 2, "z": 0}], ["a", "b"])
    assert path.read_text() == 'a,b\n1,"x,y"\n2,\n'


def _orphan(directory: Path, name: str) -> Path:
    """Kill a process in the middle of an atomic write; returns the temporary file it leaves behind."""
    code = (
        "import os, sys\n"
        "from uniformerv2.atomic import atomic_write\n"
        "def die(tmp):\n"
        "    open(tmp, 'w').write('half')\n"
        "    os._exit(9)\n"
        "atomic_write(sys.argv[1], die)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", code, str(directory / name)], env=env, timeout=60)
    assert result.returncode == 9
    (leftover,) = [p for p in directory.iterdir() if p.name != name and p.name.startswith(".")]
    return leftover


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path) -> None:
    orphan = _orphan(tmp_path, "preds.json")
    live = tmp_path / f".preds.json.uv2tmp-{atomic._HOST}-{os.getpid()}-abcdefgh.json"  # this process: in use
    live.write_text("writing")
    keep = [tmp_path / ".preds.json.tmp", tmp_path / ".hidden", tmp_path / "preds.json"]
    for path in keep:
        path.write_text("user data")
    assert remove_stale_temps(tmp_path) == [orphan]
    assert not orphan.exists() and live.exists() and all(p.exists() for p in keep)


def test_predict_cleans_stale_temporaries_in_its_output_directory(capsys, tmp_path, tiny_model_dir, make_test_video):
    out = tmp_path / "out"
    out.mkdir()
    orphan = _orphan(out, "preds.json")
    argv = ["predict", str(make_test_video()), "--model", str(tiny_model_dir), "--views", "1x1", "--workers", "0"]
    assert main([*argv, "--json", str(out / "preds.json")]) == 0
    assert not orphan.exists()


def test_plot_leaves_the_matplotlib_backend_alone(tmp_path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from uniformerv2.train.curves import plot_curves

    previous = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        records = [{"epoch": 0, "train_loss": 1.0, "train_top1": 10.0, "val_loss": 1.2, "val_top1": 8.0}]
        path = plot_curves(records, tmp_path / "curves.png")
        assert matplotlib.get_backend() == "svg"
        assert path.read_bytes()[:4] == b"\x89PNG" and os.listdir(tmp_path) == ["curves.png"]
        fig = Figure()
        fig.add_subplot().plot([0, 1])
        assert atomic_savefig(fig, tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    finally:
        matplotlib.use(previous)


def test_torch_save_on_a_full_disk_is_the_same_clear_error(tmp_path, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 0))

    def failing_save(obj, tmp) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OutputError, match=f"no space left on {tmp_path}"):
        atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_while_appending_batch_results_is_one_clear_error(tmp_path, monkeypatch) -> None:
    import uniformerv2.inference.sharding as sharding

    real_open = sharding._open_shard

    class Full:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

        def write(self, text: str) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sharding, "_open_shard", lambda *a, **k: Full(real_open(*a, **k)))
    with pytest.raises(OutputError, match=f"no space left on {tmp_path}"):
        sharding.run_sharded(["a.mp4"], lambda todo: ({"video": v} for v in todo), tmp_path / "p.json")
