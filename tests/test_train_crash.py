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
