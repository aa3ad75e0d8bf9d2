"""A training run killed at any write and restarted with the same command ends with exactly the
outputs of an uninterrupted run: ``best_model/`` weights, ``best.pt``, ``last.pt``,
``metrics.jsonl`` and ``test_metrics.json``.

A kill is simulated by failing the rename that publishes the n-th write of a file: everything
written before it is on disk, nothing after it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config
from safetensors.torch import load_file

from uniformerv2.train import fit

pytestmark = pytest.mark.slow  # end-to-end training runs

# Seed 1 with a near-zero first-epoch lr gives val top-1 50 then 100: best.pt is replaced in the
# last epoch, the case where a badly ordered commit leaves best_model/ one epoch behind.
_RUN = (
    "optim.epochs=2",
    "optim.warmup_epochs=1",
    "optim.warmup_start_lr=1e-9",
    "optim.base_lr=3e-4",
    "seed=1",
    "eval.test_clips=1",
)


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler of the package catches it."""


def _outputs(out: Path) -> dict[str, object]:
    last = torch.load(out / "last.pt", weights_only=True)
    best = torch.load(out / "best.pt", weights_only=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "best_model": load_file(out / "best_model" / "model.safetensors"),
        "best.pt": (best["epoch"], best["best_top1"], best["model"]),
        "last.pt": (last["epoch"], last["model"]),
        "metrics": [{k: v for k, v in r.items() if k != "seconds"} for r in records],
        "test": json.loads((out / "test_metrics.json").read_text()),
    }


def _assert_same(a: object, b: object, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def reference(bright_dark_small: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("reference")
    result = fit(tiny_train_config(bright_dark_small, out, *_RUN))
    assert [r["val_top1"] for r in result.history] == [50.0, 100.0], "the scenario needs a new best in epoch 2"
    return _outputs(out)


@pytest.mark.parametrize(
    "name, nth",
    [
        ("best.pt", 1),
        ("last.pt", 2),
        ("best.pt", 2),
        ("metrics.jsonl", 2),
        ("curves.png", 2),
        ("model.safetensors", 1),
        ("test_metrics.json", 1),
    ],
)
def test_kill_at_any_write_then_rerun_gives_the_uninterrupted_outputs(
    name: str,
    nth: int,
    reference: dict[str, object],
    bright_dark_small: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_replace = os.replace
    seen: list[str] = []

    def replace(src: str, dst: str) -> None:
        if Path(dst).name == name:
            seen.append(dst)
            if len(seen) == nth:
                raise _Killed(f"killed before publishing {name} #{nth}")
        real_replace(src, dst)

    cfg = tiny_train_config(bright_dark_small, tmp_path / "run", *_RUN)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        fit(cfg)
    monkeypatch.setattr(os, "replace", real_replace)
    fit(cfg)  # the same command again: resume=auto
    _assert_same(reference, _outputs(tmp_path / "run"))


def test_kill_mid_epoch_resumes_at_the_step_bit_exactly(
    bright_dark_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 videos, batch 1: 4 optimizer steps, a checkpoint after every second one. Dropout (0.5 in
    # the global blocks and the head) and drop path draw random masks at every step, and the data
    # loader runs in a worker process.
    run = ("optim.epochs=1", "optim.batch_size=1", "checkpoint_every_steps=2", "data.num_workers=1")
    run = (*run, "model.drop_path_rate=0.3", "eval.final_test=false")
    straight = fit(tiny_train_config(bright_dark_small, tmp_path / "straight", *run))

    real_step = torch.optim.AdamW.step
    steps: list[int] = []

    def step(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        steps.append(1)
        if len(steps) == 4:  # the last step
            raise _Killed("killed mid-epoch")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    cfg = tiny_train_config(bright_dark_small, tmp_path / "resumed", *run)
    with pytest.raises(_Killed):
        fit(cfg)
    state = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert (state["next_epoch"], state["next_step"]) == (0, 2)
    steps.clear()
    resumed = fit(cfg)
    assert len(steps) == 2  # only the steps after the checkpoint run again
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["train_clips"] == b["train_clips"] == 4
        assert a["val_loss"] == b["val_loss"]


# ------------------------------------------------------------------------------------- one clear line


def _train_cli(data: Path, out: Path, *overrides: str) -> list[str]:
    return [
        "train",
        "--preset",
        "debug_tiny",
        f"data.train_list={data / 'train.csv'}",
        f"data.val_list={data / 'val.csv'}",
        f"data.root={data}",
        f"output_dir={out}",
        "optim.batch_size=2",
        "optim.epochs=2",
        "eval.final_test=false",
        "progress=false",
        *overrides,
    ]


def _orphan_temp(directory: Path, name: str) -> Path:
    """A temporary file of a writer killed mid-write (by a process that has exited)."""
    import subprocess
    import sys

    code = "import os, sys\nfrom uniformerv2.atomic import atomic_write\n"
    code += "atomic_write(sys.argv[1], lambda tmp: os._exit(0))"
    subprocess.run([sys.executable, "-c", code, str(directory / name)], check=True)
    (orphan,) = [p for p in directory.iterdir() if p.name.startswith(f".{name}")]
    return orphan


def test_ctrl_c_is_one_line_naming_where_to_resume_and_orphans_go(
    bright_dark_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uniformerv2.train.trainer as trainer
    from uniformerv2.cli.main import main as cli_main

    out = tmp_path / "run"
    out.mkdir()
    orphan = _orphan_temp(out, "last.pt")
    real = trainer.train_one_epoch
    calls = []

    def interrupt_second_epoch(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", interrupt_second_epoch)
    assert cli_main(_train_cli(bright_dark_small, out)) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted; rerun the same command to resume from epoch 2 step 0"]
    assert not orphan.exists() and (out / "last.pt").is_file()


def test_nan_loss_is_one_line(bright_dark_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from uniformerv2.cli.main import main as cli_main

    args = _train_cli(bright_dark_small, tmp_path / "run", "optim.base_lr=1e30", "optim.end_lr=0", "optim.clip_grad=0")
    assert cli_main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("error: loss is ") and "at epoch 1" in err[0] and "optim.base_lr" in err[0]
    ), err


def test_worker_errors_are_one_line_naming_the_video(
    bright_dark_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from uniformerv2.cli.main import main as cli_main

    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    lines = (bright_dark_small / "train.csv").read_text().splitlines()[:3] + [f"{tmp_path / 'broken.mp4'},1"]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    args = _train_cli(bright_dark_small, tmp_path / "run", f"data.train_list={tmp_path / 'train.csv'}")
    assert cli_main([*args, "data.num_workers=1", "optim.epochs=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "train.csv:4: cannot load" in err[0], err
    assert "broken.mp4" in err[0] and "Traceback" not in err[0]


def test_every_video_failing_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    from conftest import tiny_train_config

    from uniformerv2.train.data import VideoLoadError

    for i in range(4):
        (tmp_path / f"bad{i}.mp4").write_bytes(b"garbage")
    (tmp_path / "train.csv").write_text("".join(f"bad{i}.mp4,{i % 2}\n" for i in range(4)))
    cfg = tiny_train_config(tmp_path, tmp_path / "run", "data.val_list=", "data.skip_bad_videos=true")
    with pytest.raises(VideoLoadError, match="every one of the 4 training videos .* failed"):
        fit(cfg)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_dead_worker_is_one_line(
    bright_dark_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from uniformerv2.cli.main import main as cli_main
    from uniformerv2.train.data import VideoListDataset

    monkeypatch.setattr(VideoListDataset, "_load", lambda self, item, index: os._exit(3))  # killed in the worker
    assert cli_main([*_train_cli(bright_dark_small, tmp_path / "run"), "data.num_workers=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: a data-loader worker stopped") and "num_workers" in err[0], err


# ------------------------------------------------------------------------------------- what users see


def test_progress_bar_and_tensorboard_show_loss_and_lr(
    bright_dark_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from uniformerv2.train.optim import lr_at

    board = importlib.util.find_spec("tensorboard") is not None  # the [train] extra
    run = ("optim.epochs=2", "eval.final_test=false", "progress=true", f"tensorboard={str(board).lower()}")
    cfg = tiny_train_config(bright_dark_small, tmp_path / "run", *run)
    result = fit(cfg)
    err = capsys.readouterr().err
    assert "epoch 2" in err and "loss=" in err and "lr=" in err  # the tqdm bar's postfix
    if not board:
        pytest.skip("TensorBoard is not installed (extra [train]): its event log is not checked")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    lr = [e.value for e in events.Scalars("train/lr")]
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]  # optimizer steps, 2 per epoch
    assert lr == pytest.approx([lr_at(e + i / 2, cfg.optim) for e in (0, 1) for i in (0, 1)], rel=1e-6)
    val = [e.value for e in events.Scalars("epoch/val_top1")]
    assert val == [r["val_top1"] for r in result.history]


def test_sigterm_saves_at_the_next_step_and_stops(
    bright_dark_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from uniformerv2.train.trainer import TrainingInterrupted

    run = ("optim.epochs=1", "optim.batch_size=1", "checkpoint_every_minutes=0", "eval.final_test=false")
    cfg = tiny_train_config(bright_dark_small, tmp_path / "run", *run)
    real_step = torch.optim.AdamW.step
    steps: list[int] = []

    def step(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        steps.append(1)
        if len(steps) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's preemption notice during step 2
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="resume from epoch 1 step 2"):
        fit(cfg)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is only installed while training
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert (state["next_epoch"], state["next_step"]) == (0, 2) and len(steps) == 2
    steps.clear()
    result = fit(cfg)
    assert len(steps) == 2 and result.history[0]["train_clips"] == 4
