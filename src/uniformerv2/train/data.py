"""Annotation lists, datasets, collate and samplers for training (official behaviour §3.1-3.4, §4.1).

Two list formats are read:

- ``"video"`` (official ``kinetics_sparse``): ``path<SEP>label`` per line, 0-based integer label;
  the separator is configurable (``","`` in the Kinetics run.sh, ``" "`` elsewhere). The line is
  split at its *last* separator, so paths may contain the separator.
- ``"frames"`` (official ``sth``): ``frame_dir num_frames label`` separated by whitespace; the
  frames are ``frame_dir/<template % k>`` with k counted from 1.

Differences from the official datasets, on purpose: a video that cannot be decoded is never
replaced by another random video. It raises (naming the file and its list line), or with
``skip_bad_videos`` it is dropped from its batch and counted. Every random draw of an item (frame
indices, RandAugment, crop, flip) comes from a ``random.Random`` seeded by (seed, epoch, index),
so a run is reproducible whatever the number of workers, and a resumed run sees the same clips.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from uniformerv2.errors import UniFormerV2Error, VideoDecodeError
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.train.config import AugConfig, DataConfig
from uniformerv2.train.distributed import DistContext
from uniformerv2.video import (
    TrainTransform,
    extract_views,
    open_video,
    sample_indices,
    val_transform,
)
from uniformerv2.video.inputs import read_list_text

__all__ = [
    "Annotation",
    "AnnotationError",
    "VideoLoadError",
    "WorkerError",
    "LoadFailure",
    "checked_batches",
    "read_annotations",
    "VideoListDataset",
    "Batch",
    "collate_views",
    "ShardSampler",
    "ResumableSampler",
    "build_loader",
]

_logger = logging.getLogger(__name__)

Mode = Literal["train", "val", "test"]


class AnnotationError(UniFormerV2Error, ValueError):
    """Lines of an annotation file that cannot be used; the message names file, line and reason."""


class VideoLoadError(UniFormerV2Error, RuntimeError):
    """A listed video could not be decoded; the message names its list line and file."""


class WorkerError(UniFormerV2Error, RuntimeError):
    """A data-loader worker process died (killed for memory, crashed in native code)."""


@dataclass(frozen=True)
class Annotation:
    """One line of an annotation list.

    Attributes:
        path: video file or frame directory, joined with ``DataConfig.root``.
        label: class index in [0, num_classes).
        num_frames: frame count from a ``"frames"`` list; 0 for videos (read from the file).
        where: ``file:line`` of the entry, for error messages.
    """

    path: str
    label: int
    num_frames: int
    where: str


def _split(text: str, sep: str, fields: int) -> list[str]:
    """Split off the last ``fields - 1`` fields; ``" "`` means any run of whitespace."""
    parts = text.rsplit(None, fields - 1) if sep == " " else text.rsplit(sep, fields - 1)
    return [p.strip() for p in parts]


def _parse_line(text: str, where: str, data: DataConfig, num_classes: int) -> Annotation:
    fields = 2 if data.format == "video" else 3
    sep = data.separator if data.format == "video" else " "
    parts = _split(text, sep, fields)
    if len(parts) != fields or not parts[0]:
        layout = "path<SEP>label" if fields == 2 else "frame_dir num_frames label"
        raise ValueError(f"expected {layout} (separator {sep!r})")
    try:
        label = int(parts[-1])
        frames = int(parts[1]) if fields == 3 else 0
    except ValueError:
        raise ValueError("label (and frame count) must be integers") from None
    if not 0 <= label < num_classes:
        raise ValueError(f"label {label} is outside [0, {num_classes})")
    if fields == 3 and frames < 1:
        raise ValueError(f"frame count {frames} must be >= 1")
    return Annotation(os.path.join(data.root, parts[0]) if data.root else parts[0], label, frames, where)


def read_annotations(path: str | os.PathLike[str], data: DataConfig, num_classes: int) -> list[Annotation]:
    """Parse and check an annotation list (the ``check`` step run before training).

    Blank lines are skipped. With ``data.check_files`` every video file (or frame directory)
    must exist; nothing is decoded here (``uniformerv2 check-videos`` does that).

    Raises:
        AnnotationError: one message listing every bad line (up to 20) as ``file:line: reason``.
        InputError: the list itself does not exist or is not UTF-8 text.
    """
    items: list[Annotation] = []
    problems: list[str] = []
    with io.StringIO(read_list_text(path)) as handle:  # UTF-8 with or without BOM; binary refused
        for number, raw in enumerate(handle, start=1):
            text = raw.strip()
            if not text:
                continue
            where = f"{os.fspath(path)}:{number}"
            try:
                item = _parse_line(text, where, data, num_classes)
            except ValueError as exc:
                problems.append(f"{where}: {exc}: {text!r}")
                continue
            exists = os.path.isdir(item.path) if data.format == "frames" else os.path.isfile(item.path)
            if data.check_files and not exists:
                problems.append(f"{where}: {'directory' if data.format == 'frames' else 'file'} not found: {item.path}")
                continue
            items.append(item)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AnnotationError(f"{len(problems)} bad line(s) in {os.fspath(path)}:\n  {shown}{more}")
    if not items:
        raise AnnotationError(f"{os.fspath(path)}: no entries")
    return items


class VideoListDataset(Dataset):
    """Clips of the videos of an annotation list.

    Args:
        items: parsed annotations (:func:`read_annotations`).
        preprocess: frames, crop, normalisation, channel order; for ``"test"`` also the views.
        mode: ``"train"``: one random clip (``sample_indices(..., clip_idx=-1)``) augmented
            ``aug.num_samples`` times (official train, §3.3-3.4); ``"val"``: temporal view 0 of 1
            (segment midpoints), short-side resize and centre crop (official Kinetics val);
            ``"test"``: ``num_clips x num_crops`` views (official multi-view test).
        aug: augmentation settings (train only).
        frame_template: frame file names of frame directories, numbered from 1.
        seed: base of the per-item random generators.
        skip_bad_videos: return None for an item that cannot be decoded (the collate drops and
            counts it) instead of raising.

    Items are ``(views, label)`` with views (N, 3, T, S, S) float32: N = ``aug.num_samples``
    for train, 1 for val, clips x crops for test.
    """

    def __init__(
        self,
        items: Sequence[Annotation],
        preprocess: PreprocessConfig,
        mode: Mode = "train",
        *,
        aug: AugConfig | None = None,
        frame_template: str | None = None,
        seed: int = 0,
        skip_bad_videos: bool = False,
    ) -> None:
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
        self.items = list(items)
        self.preprocess = preprocess
        self.mode = mode
        self.frame_template = frame_template
        self.seed = seed
        self.skip_bad_videos = skip_bad_videos
        self.epoch = 0
        self._warned: set[str] = set()
        aug = aug or AugConfig()
        self.transform = TrainTransform(
            preprocess,
            aug.num_samples,
            auto_augment=aug.auto_augment or None,
            scale=aug.scale,
            ratio=aug.ratio,
            flip=aug.flip,
        )

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch`` (workers are re-created each epoch and copy it)."""
        self.epoch = epoch

    @property
    def labels(self) -> list[int]:
        return [item.label for item in self.items]

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}:{self.epoch}:{index}")

    def _check_complete(self, item: Annotation, reader: Any) -> None:
        """A video cut short (fewer decodable frames than its header lists) is skipped with
        ``skip_bad_videos``, otherwise trained on with a warning."""
        if reader.complete:
            return
        if self.skip_bad_videos:
            raise VideoDecodeError(item.path, f"truncated: only {reader.num_frames} frames are decodable")
        if item.path not in self._warned:
            self._warned.add(item.path)
            _logger.warning(
                "%s: %s is truncated: using its %d decodable frames (data.skip_bad_videos=true skips such videos)",
                item.where,
                item.path,
                reader.num_frames,
            )

    def _load(self, item: Annotation, index: int) -> torch.Tensor:
        reader = open_video(item.path, template=self.frame_template if item.num_frames else None)
        with reader:
            self._check_complete(item, reader)
            if self.mode == "test":
                return extract_views(reader, self.preprocess)
            total = item.num_frames or reader.num_frames
            if self.mode == "train":
                rng = self._rng(index)
                frames = reader.get_frames(sample_indices(total, self.preprocess, -1, rng, one_based=False))
                return self.transform(frames, rng)
            frames = reader.get_frames(sample_indices(total, self.preprocess, 0, num_clips=1, one_based=False))
            return val_transform(frames, self.preprocess)[None]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        item = self.items[index]
        try:
            return self._load(item, index), item.label
        except Exception as exc:  # any decoder failure of this one video
            message = f"{item.where}: cannot load {item.path}: {exc}"
            if not self.skip_bad_videos:
                raise VideoLoadError(message) from exc
            _logger.warning("skipping %s", message)
            return None


class LoadFailure(NamedTuple):
    """A :class:`VideoLoadError` carried as data out of a loader worker, so that the main process
    raises it with its one-line message (an exception raised in a worker comes back wrapped in
    the worker's traceback)."""

    message: str


class _FailuresAsData(Dataset):
    """``dataset``'s items, with a :class:`VideoLoadError` returned as a :class:`LoadFailure`."""

    def __init__(self, dataset: VideoListDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | LoadFailure | None:
        try:
            return self.dataset[index]
        except VideoLoadError as exc:
            return LoadFailure(str(exc))


class Batch(NamedTuple):
    """A collated batch.

    Attributes:
        inputs: (B*N, 3, T, S, S) for train/val (repeated-augmentation copies flattened,
            official ``multiple_samples_collate``), or (B, V, 3, T, S, S) for test.
        labels: (B*N,) or (B,) int64.
        skipped: items dropped because their video could not be decoded (``skip_bad_videos``).
        errors: messages of items that failed without ``skip_bad_videos``; whoever reads the
            batch raises :class:`VideoLoadError` with the first.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    skipped: int
    errors: tuple[str, ...] = ()


def collate_views(items: Sequence[tuple[torch.Tensor, int] | LoadFailure | None], flatten: bool = True) -> Batch:
    """Stack items, dropping failed (None) ones.

    Args:
        items: ``(views (N, 3, T, S, S), label)``, None (skipped) or a :class:`LoadFailure` per video.
        flatten: merge the view axis into the batch (each copy keeps its video's label).

    Returns:
        A :class:`Batch`; with every item failed, ``inputs`` has batch size 0.
    """
    errors = tuple(item.message for item in items if isinstance(item, LoadFailure))
    good = [item for item in items if item is not None and not isinstance(item, LoadFailure)]
    skipped = len(items) - len(good) - len(errors)
    if not good:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), skipped, errors)
    views = torch.stack([v for v, _ in good])  # (B, N, 3, T, S, S)
    labels = torch.tensor([label for _, label in good], dtype=torch.long)
    if flatten:
        labels = labels.repeat_interleave(views.shape[1])
        views = views.flatten(0, 1)
    return Batch(views, labels, skipped, errors)


def checked_batches(loader: Iterable[Batch]) -> Iterator[Batch]:
    """The batches of ``loader``, raising :class:`VideoLoadError` for a batch with a failed video
    and :class:`WorkerError` (one line) when a worker process died."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except RuntimeError as exc:
            if "DataLoader worker" not in str(exc):
                raise
            reason = str(exc).strip().splitlines()[0]
            raise WorkerError(
                f"a data-loader worker stopped ({reason}); it may have run out of memory: lower data.num_workers"
            ) from None
        if batch.errors:
            raise VideoLoadError(batch.errors[0])
        yield batch


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + W, ...`` in order, without the padding of ``DistributedSampler``,
    so every validation/test video is counted exactly once (official test double-counts, §6.13)."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (seeded shuffle, same order for the same (seed, epoch)) that can
    start an epoch after its first ``skip`` indices, so a run resumed mid-epoch sees exactly the
    batches the interrupted run had not reached yet. ``skip`` applies to the current epoch only:
    :meth:`set_epoch` resets it."""

    skip: int = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return max(0, super().__len__() - self.skip)


def build_loader(
    dataset: VideoListDataset, batch_size: int, ctx: DistContext, *, num_workers: int, seed: int = 0
) -> DataLoader:
    """Loader for a dataset: training shuffles with a :class:`ResumableSampler` (seeded, epoch set
    by the caller) and drops the last partial batch (official); val/test shard in order.

    Workers are not persistent, so :meth:`VideoListDataset.set_epoch` reaches them each epoch.
    """
    train = dataset.mode == "train"
    sampler: Sampler[int]
    if train:
        sampler = ResumableSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    else:
        sampler = ShardSampler(len(dataset), ctx.rank, ctx.world_size)
    return DataLoader(
        _FailuresAsData(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=partial(collate_views, flatten=dataset.mode != "test"),
        pin_memory=ctx.device.type == "cuda",
        drop_last=train,
    )
