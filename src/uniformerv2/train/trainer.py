"""``fit(config)``: the whole fine-tuning run, from one CPU process to many GPU nodes
(official ``train_net.train``, §4.1).

Order: join the process group -> write the resolved config -> check the annotation lists -> build
the model (weights, head policy, freezing) -> AdamW -> resume -> DDP -> per epoch: train, validate
(every ``eval.period`` epochs and after the last), commit the epoch -> export the best model in
the release format (``best_model/``) -> multi-view test of the best model (``test_metrics.json``).

An epoch is committed by writing ``last.pt``, which holds the whole history; everything else is
derived from it and written after it: ``best.pt`` (a copy of the same state when val top-1 is
strictly better), ``metrics.jsonl`` and ``curves.png``. A run killed anywhere and restarted with the
same command (``resume="auto"``) first repairs what the kill left behind (``best.pt`` of a new best
epoch, the metrics and the curves are rewritten from ``last.pt``), then continues; ``best_model/``
and ``test_metrics.json`` are rewritten at the end of every run, so they always match ``best.pt``.

Within an epoch ``last.pt`` is also saved every ``checkpoint_every_minutes`` (or
``checkpoint_every_steps``) and on SIGTERM; a resumed run continues at that optimizer step with the
same batches, dropout masks and running totals. Ctrl-C and SIGTERM end :func:`fit` with
:class:`TrainingInterrupted`, whose message says where the same command resumes.

Only rank 0 writes files; every rank reads ``best.pt`` at the end, so with several nodes the
output directory must be on a shared filesystem (as it must for resuming).
"""

from __future__ import annotations

import copy
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from uniformerv2.atomic import atomic_write_text, remove_stale_temps
from uniformerv2.model.uniformerv2 import UniFormerV2
from uniformerv2.train import checkpoint as ckpt
from uniformerv2.train.builder import build_model
from uniformerv2.train.config import TrainConfig, per_process_batch
from uniformerv2.train.curves import (
    CURVES,
    METRICS,
    plot_curves,
    read_metrics,
    write_metrics,
)
from uniformerv2.train.data import VideoListDataset, VideoLoadError, build_loader, read_annotations
from uniformerv2.train.distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    cleanup,
    convert_sync_batchnorm,
    init_distributed,
    wrap_model,
)
from uniformerv2.train.engine import (
    evaluate,
    make_scaler,
    resolve_amp,
    test_multiview,
    train_one_epoch,
)
from uniformerv2.train.optim import build_optimizer
from uniformerv2.weights.hub import save_pretrained

__all__ = [
    "CheckpointSchedule",
    "FitResult",
    "TrainingInterrupted",
    "fit",
    "CONFIG_FILE",
    "BEST_MODEL_DIR",
    "TEST_METRICS",
]

_logger = logging.getLogger(__name__)

CONFIG_FILE = "train_config.json"
BEST_MODEL_DIR = "best_model"
TEST_METRICS = "test_metrics.json"
TENSORBOARD_DIR = "tensorboard"


@dataclass
class FitResult:
    """What a run produced.

    Attributes:
        model: the unwrapped model with the weights of the last epoch.
        history: one record per epoch (what ``metrics.jsonl`` holds).
        best_top1: best validation top-1 (%), -1.0 without validation.
        best_epoch: 0-based epoch of ``best_top1`` (-1 without validation).
        test: final multi-view test metrics of the best model, or None.
        output_dir: the run directory.
    """

    model: UniFormerV2
    history: list[dict[str, Any]] = field(default_factory=list)
    best_top1: float = -1.0
    best_epoch: int = -1
    test: dict[str, float] | None = None
    output_dir: Path = Path(".")


def fit(config: TrainConfig) -> FitResult:
    """Run the fine-tuning described by ``config`` (see the module docstring).

    Launch it under ``torchrun`` for several processes; without torchrun it trains in this
    process on ``config.device``.

    Raises:
        TrainingInterrupted: Ctrl-C or SIGTERM (the message names the epoch and step to resume from).
        VideoLoadError: a video failed (without ``data.skip_bad_videos``), or every video of an epoch did.
        NonFiniteLossError: the loss became NaN or infinite.
        WorkerError: a data-loader worker died.
    """
    ctx = init_distributed(config.device)
    try:
        return _run(config, ctx)
    finally:
        cleanup(ctx)


def _datasets(config: TrainConfig) -> tuple[VideoListDataset, VideoListDataset | None]:
    data, classes = config.data, config.model.num_classes
    if not data.train_list:
        raise ValueError("data.train_list is empty: give the training annotation file")
    preprocess = data.preprocess()

    def dataset(source: str, mode: Literal["train", "val"]) -> VideoListDataset:
        items = read_annotations(source, data, classes)
        aug = config.aug if mode == "train" else None
        return VideoListDataset(
            items,
            preprocess,
            mode,
            aug=aug,
            frame_template=data.frame_template,
            seed=config.seed,
            skip_bad_videos=data.skip_bad_videos,
        )

    return dataset(data.train_list, "train"), dataset(data.val_list, "val") if data.val_list else None


class CheckpointSchedule:
    """When to save ``last.pt`` within an epoch (the end of an epoch always saves it).

    Every ``every_steps`` optimizer steps of an epoch when that is > 0, otherwise after
    ``every_minutes`` of training since the last save (0 turns mid-epoch saves off).
    """

    def __init__(self, every_steps: int, every_minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_steps = every_steps
        self.seconds = 60.0 * every_minutes
        self.clock = clock
        self.last = clock()

    @property
    def timed(self) -> bool:
        return self.every_steps <= 0 and self.seconds > 0

    def due(self, step: int) -> bool:
        """Whether to save after optimizer step ``step`` (1-based within the epoch)."""
        if self.every_steps > 0:
            return step % self.every_steps == 0
        if self.seconds <= 0 or self.clock() - self.last < self.seconds:
            return False
        self.saved()
        return True

    def saved(self) -> None:
        """Restart the clock (a checkpoint was just written)."""
        self.last = self.clock()


@dataclass
class _Position:
    """Where a run stands: the next (epoch, iteration) to train, the best val top-1 and its epoch,
    the epoch records, and the totals of the current epoch's first iterations (mid-epoch resume)."""

    epoch: int = 0
    iteration: int = 0
    best: tuple[float, int] = (-1.0, -1)
    history: list[dict[str, Any]] = field(default_factory=list)
    carry: torch.Tensor | None = None


def _resume(
    path: Path,
    model: UniFormerV2,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    config: TrainConfig,
    ctx: DistContext,
) -> _Position:
    """Restore a training state into the model, optimizer, scaler and generators; repair the
    files derived from it (rank 0); returns where to continue."""
    state = ckpt.load_state(path)
    if json.loads(state["config"]) != config.to_dict():
        _logger.warning("%s was written with a different config; continuing with the current one", path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    epoch, iteration = state.get("next_epoch", state["epoch"] + 1), state.get("next_step", 0)
    out = Path(config.output_dir)
    history = _stored_history(state, out, epoch)
    carry = state.get("totals") if ctx.is_primary else None  # summed over ranks when saved
    if ctx.is_primary:
        _repair_outputs(out, state, history)
    where = f"epoch {epoch + 1} step {iteration}" if iteration else f"the start of epoch {epoch + 1}"
    _logger.info("resumed from %s at %s", path, where)
    return _Position(epoch, iteration, (float(state["best_top1"]), int(state["best_epoch"])), history, carry)


def _state(
    model: UniFormerV2,
    optimizer: Any,
    scaler: Any,
    config: TrainConfig,
    pos: _Position,
) -> dict[str, Any]:
    """The training state that resumes at ``pos`` (see :mod:`uniformerv2.train.checkpoint`)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": pos.epoch - 1,
        "next_epoch": pos.epoch,
        "next_step": pos.iteration,
        "best_top1": pos.best[0],
        "best_epoch": pos.best[1],
        "rng": ckpt.rng_state(),
        "config": config.to_json(),
        "history": json.dumps(pos.history),
    }
    if pos.carry is not None:
        state["totals"] = pos.carry
    return state


def _log_epoch(record: dict[str, Any], epochs: int) -> None:
    val = f" | val loss {record['val_loss']:.4f} top1 {record['val_top1']:.2f}" if "val_loss" in record else ""
    skipped = f" | {record['train_skipped']} bad videos skipped" if record["train_skipped"] else ""
    _logger.info(
        "epoch %d/%d | train loss %.4f top1 %.2f%s | lr %.3g | %.1f s%s",
        record["epoch"] + 1,
        epochs,
        record["train_loss"],
        record["train_top1"],
        val,
        record["lr"],
        record["seconds"],
        skipped,
    )


class _Board:
    """TensorBoard log of a run (rank 0): per optimizer step ``train/loss`` (this process's share of
    the step's batch) and ``train/lr``, per epoch every number of the epoch record as ``epoch/<key>``.
    Steps count optimizer steps from the start of training, so a resumed run continues the curves."""

    def __init__(self, directory: Path, accum_steps: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("tensorboard=true needs TensorBoard: pip install 'uniformerv2[train]'") from exc
        self.writer = SummaryWriter(str(directory))
        self.accum_steps = accum_steps
        self.previous = torch.zeros(5, dtype=torch.float64)

    def step(self, iteration: int, totals: torch.Tensor, lr: float) -> None:
        """Log the optimizer step ending at global ``iteration``, from the epoch's running totals."""
        done, self.previous = totals - self.previous, totals.clone()
        step = -(-iteration // self.accum_steps)
        if done[3] > 0:
            self.writer.add_scalar("train/loss", float(done[0] / done[3]), step)
        self.writer.add_scalar("train/lr", lr, step)

    def begin_epoch(self, carry: torch.Tensor | None) -> None:
        """The epoch's totals restart (from ``carry`` when resuming within it)."""
        self.previous = torch.zeros(5, dtype=torch.float64) if carry is None else carry.clone()

    def epoch(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"epoch/{key}", value, record["epoch"] + 1)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM during :func:`fit`; the message says where a rerun resumes."""


class _TerminationNotice:
    """While training (in the main thread), SIGTERM - a scheduler's preemption notice - only sets
    :attr:`requested`: the run then saves ``last.pt`` after the current optimizer step and stops
    with :class:`TrainingInterrupted`, instead of dying mid-step and losing the work since the last
    checkpoint. The previous handler is restored afterwards."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _TerminationNotice:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._notice)
        return self

    def _notice(self, signum: int, frame: Any) -> None:
        _logger.warning("SIGTERM: saving a checkpoint after this optimizer step, then stopping")
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _interrupted(committed: tuple[int, int] | None, epochs: int) -> TrainingInterrupted:
    if committed is None:
        return TrainingInterrupted("no checkpoint was saved yet; rerun the same command to start again")
    epoch, step = committed
    if epoch >= epochs:
        return TrainingInterrupted("rerun the same command to export and test the best model")
    return TrainingInterrupted(f"rerun the same command to resume from epoch {epoch + 1} step {step}")


def _run(config: TrainConfig, ctx: DistContext) -> FitResult:
    out = Path(config.output_dir)
    if ctx.is_primary:
        out.mkdir(parents=True, exist_ok=True)
        for stale in [*remove_stale_temps(out), *remove_stale_temps(out / BEST_MODEL_DIR)]:
            _logger.info("removed %s, left by a run that was killed while writing", stale)
        atomic_write_text(out / CONFIG_FILE, config.to_json() + "\n")
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    amp = resolve_amp(config.optim.amp, ctx.device)
    train_set, val_set = _datasets(config)
    model = build_model(config).to(ctx.device)
    if config.model.sync_bn and ctx.distributed:
        convert_sync_batchnorm(model)
    optimizer = build_optimizer(model, config.optim)
    scaler = make_scaler(amp, ctx.device)
    pos = _Position()
    resume_path = ckpt.find_resume(config.resume, out)
    if resume_path is not None:
        pos = _resume(resume_path, model, optimizer, scaler, config, ctx)
    committed = [(pos.epoch, pos.iteration)] if resume_path is not None else []  # positions saved so far
    try:
        with _TerminationNotice() as notice:
            return _train(config, ctx, out, model, optimizer, scaler, amp, train_set, val_set, pos, committed, notice)
    except KeyboardInterrupt:
        raise _interrupted(committed[-1] if committed else None, config.optim.epochs) from None


def _train(
    config: TrainConfig,
    ctx: DistContext,
    out: Path,
    model: UniFormerV2,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: str,
    train_set: VideoListDataset,
    val_set: VideoListDataset | None,
    pos: _Position,
    committed: list[tuple[int, int]],
    notice: _TerminationNotice,
) -> FitResult:
    """The epochs from ``pos`` on, then the export and the test; appends every saved position
    to ``committed``; stops after a save when ``notice`` is set (on every rank at the same step)."""
    net = wrap_model(model, ctx)
    batch = per_process_batch(config.optim, ctx.world_size)
    workers = config.data.num_workers
    train_loader = build_loader(train_set, batch, ctx, num_workers=workers, seed=config.seed)
    if len(train_loader) == 0:
        raise ValueError(f"{len(train_set)} training videos over {ctx.world_size} process(es) fill no batch of {batch}")
    val_loader = None
    if val_set is not None:
        val_loader = build_loader(val_set, config.eval.batch_size or batch, ctx, num_workers=workers)
    schedule = CheckpointSchedule(config.checkpoint_every_steps, config.checkpoint_every_minutes)
    board = _Board(out / TENSORBOARD_DIR, config.optim.accum_steps) if config.tensorboard and ctx.is_primary else None
    iters = len(train_loader)  # per epoch (no iteration skipped yet)

    def after_step(iteration: int, totals: torch.Tensor) -> None:
        if board is not None:
            board.step(pos.epoch * iters + iteration, totals, optimizer.param_groups[0]["lr"])
        if iteration < iters:
            checkpoint_within_epoch(iteration, totals)

    def stop_requested() -> bool:
        """SIGTERM reached any rank (every rank asks at the same step)."""
        return bool(all_reduce_sum(torch.tensor([float(notice.requested)], dtype=torch.float64), ctx)[0] > 0)

    def checkpoint_within_epoch(iteration: int, totals: torch.Tensor) -> None:
        due = schedule.due(iteration // config.optim.accum_steps) if ctx.is_primary or not schedule.timed else False
        flags = torch.tensor([float(due), float(notice.requested)], dtype=torch.float64)
        if ctx.distributed:  # rank 0's clock decides for every rank; a SIGTERM on any rank stops all
            flags = all_reduce_sum(flags, ctx)
        due, stop = bool(flags[0] > 0), bool(flags[1] > 0)
        if not (due or stop):
            return
        summed = all_reduce_sum(totals.clone(), ctx)
        if ctx.is_primary:
            mid = _Position(pos.epoch, iteration, pos.best, pos.history, summed)
            ckpt.save_state(out / ckpt.LAST, _state(model, optimizer, scaler, config, mid))
            _logger.info("saved %s at epoch %d step %d", out / ckpt.LAST, pos.epoch + 1, iteration)
        committed.append((pos.epoch, iteration))
        schedule.saved()
        if stop:
            raise _interrupted(committed[-1], config.optim.epochs)

    while pos.epoch < config.optim.epochs:
        epoch = pos.epoch
        train_set.set_epoch(epoch)
        train_loader.sampler.set_epoch(epoch, skip=pos.iteration * batch)  # type: ignore[attr-defined]
        if board is not None:
            board.begin_epoch(pos.carry)
        stats = train_one_epoch(
            net,
            train_loader,
            optimizer,
            scaler,
            config.optim,
            epoch,
            ctx,
            amp=amp,
            progress=config.progress,
            seed=config.seed,
            start=pos.iteration,
            carry=pos.carry,
            after_step=after_step,
        )
        if stats["count"] == 0:
            raise VideoLoadError(
                f"{config.data.train_list}: every one of the {stats['skipped']} training videos of epoch {epoch + 1} "
                "failed to load; check them with `uniformerv2 check-videos`"
            )
        record: dict[str, Any] = {"epoch": epoch, "lr": stats["lr"], "seconds": stats["seconds"]}
        record.update({f"train_{k}": stats[k] for k in ("loss", "top1", "top5", "skipped")}, train_clips=stats["count"])
        improved = False
        due = (epoch + 1) % config.eval.period == 0 or epoch + 1 == config.optim.epochs
        if val_loader is not None and due:
            val = evaluate(net, val_loader, ctx, progress=config.progress)
            record.update({f"val_{k}": val[k] for k in ("loss", "top1", "top5")})
            improved = val["top1"] > pos.best[0]
            if improved:
                pos.best = (val["top1"], epoch)
        pos = _Position(epoch + 1, 0, pos.best, [*pos.history, record])
        if ctx.is_primary:
            _save_epoch(out, model, optimizer, scaler, config, pos, improved)
            _log_epoch(record, config.optim.epochs)
            if board is not None:
                board.epoch(record)
        committed.append((pos.epoch, 0))
        schedule.saved()
        if pos.epoch < config.optim.epochs and stop_requested():
            raise _interrupted(committed[-1], config.optim.epochs)
    if board is not None:
        board.close()
    barrier(ctx)
    best_model = _best_model(model, out, ctx)
    if ctx.is_primary:
        save_pretrained(best_model, out / BEST_MODEL_DIR)
    test = _final_test(best_model, config, ctx, batch) if config.eval.final_test else None
    if test is not None and ctx.is_primary:
        atomic_write_text(out / TEST_METRICS, json.dumps(test, indent=2) + "\n")
        _logger.info(
            "test (%dx%d views): top1 %.2f top5 %.2f over %d videos",
            config.eval.test_clips,
            config.eval.test_crops,
            test["top1"],
            test["top5"],
            test["count"],
        )
    return FitResult(model, pos.history, pos.best[0], pos.best[1], test, out)


def _save_epoch(
    out: Path,
    model: UniFormerV2,
    optimizer: Any,
    scaler: Any,
    config: TrainConfig,
    pos: _Position,
    improved: bool,
) -> None:
    """Commit the epoch before ``pos``: ``last.pt`` first (the commit), then what derives from it."""
    state = _state(model, optimizer, scaler, config, pos)
    ckpt.save_state(out / ckpt.LAST, state)
    if improved:
        ckpt.save_state(out / ckpt.BEST, state)
    _write_history(out, pos.history)


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    write_metrics(history, out / METRICS)
    try:
        plot_curves(history, out / CURVES)
    except ImportError:
        _logger.warning("matplotlib is not installed: %s not written (pip install 'uniformerv2[plot]')", CURVES)


def _stored_history(state: dict[str, Any], out: Path, start: int) -> list[dict[str, Any]]:
    """The epoch records up to the state's epoch (from ``metrics.jsonl`` for states without history)."""
    if "history" in state:
        return json.loads(state["history"])
    return read_metrics(out / METRICS, before_epoch=start)


def _repair_outputs(out: Path, state: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """Bring the files derived from ``last.pt`` up to date after a kill (see the module docstring).

    ``best.pt`` only changes in the epoch that found the new best, whose state is ``last.pt``
    itself, so a missing or older ``best.pt`` is rewritten from it.
    """
    best_epoch = int(state["best_epoch"])
    best_path = out / ckpt.BEST
    at_epoch_end = not state.get("next_step", 0)
    if (
        at_epoch_end
        and best_epoch == state["epoch"]
        and (not best_path.is_file() or ckpt.load_state(best_path)["epoch"] != best_epoch)
    ):
        _logger.warning(
            "%s was not written for epoch %d before the run stopped; writing it now", best_path, best_epoch + 1
        )
        ckpt.save_state(best_path, state)
    elif best_epoch >= 0 and not best_path.is_file():
        _logger.warning("%s is missing; the best model will be the last one", best_path)
    if read_metrics(out / METRICS) != history or not (out / CURVES).is_file():
        _write_history(out, history)


def _best_model(model: UniFormerV2, out: Path, ctx: DistContext) -> UniFormerV2:
    """A copy of ``model`` with the weights of ``best.pt`` (the last weights when there is none)."""
    best: UniFormerV2 = copy.deepcopy(model)
    path = out / ckpt.BEST
    if path.is_file():
        best.load_state_dict(ckpt.load_state(path, map_location=ctx.device)["model"])
    return best.eval()


def _final_test(model: UniFormerV2, config: TrainConfig, ctx: DistContext, batch: int) -> dict[str, float] | None:
    """Multi-view test on ``data.test_list`` (the val list when empty)."""
    data = config.data
    source = data.test_list or data.val_list
    if not source:
        return None
    items = read_annotations(source, data, config.model.num_classes)
    preprocess = data.preprocess(config.eval.test_clips, config.eval.test_crops)
    dataset = VideoListDataset(
        items, preprocess, "test", frame_template=data.frame_template, skip_bad_videos=data.skip_bad_videos
    )
    views = config.eval.test_clips * config.eval.test_crops
    loader = build_loader(
        dataset, max(1, (config.eval.batch_size or batch) // views), ctx, num_workers=data.num_workers
    )
    return test_multiview(model, loader, ctx, progress=config.progress)
