"""Sharded, resumable batch jobs over many videos (one process, or many under ``torchrun``).

Rank r of W (``RANK`` / ``WORLD_SIZE`` from torchrun; rank 0 of 1 when unset) processes
``paths[r::W]`` and appends one JSON line per finished video to ``<out>.rank<r>.jsonl`` next to
the output file, flushing after each line. A rerun reads every ``<out>.rank*.jsonl`` first and
skips the videos that already have a successful record, so an interrupted job resumes where it
stopped (also with a different number of ranks); failed videos are tried again. After all ranks
are done (a ``torch.distributed`` barrier on the gloo backend when W > 1), rank 0 merges the
records, last record per video winning, in input order, and writes the final file through a
temporary name and a rename. Ranks on several nodes need a shared filesystem for the output
directory.

Each shard file starts with a header line ``{"fingerprint": {...}}``: the settings its results were
made with (:func:`job_fingerprint`: weights, labels, preprocessing, views and options). A rerun
resumes only when every shard file of the output has the same fingerprint; otherwise it refuses
with :class:`~uniformerv2.errors.ResumeError`, unless ``overwrite`` discards the earlier results.
Results of different settings are never mixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from uniformerv2.atomic import atomic_write_json, json_safe, output_error
from uniformerv2.errors import ResumeError
from uniformerv2.runtime import barrier, dist_env

__all__ = ["Job", "ShardSummary", "job_fingerprint", "weights_digest", "shard_file", "read_records", "run_sharded"]

_logger = logging.getLogger(__name__)

#: A job turns the videos still to do into one record per video: ``{"video": path, ...}``, with
#: an ``"error"`` entry for a video that failed.
Job = Callable[[list[str]], Iterable[dict[str, Any]]]


@dataclass
class ShardSummary:
    """What one rank did.

    Attributes:
        rank: this process's rank.
        world_size: number of ranks.
        processed: videos this rank ran in this call.
        skipped: videos of this rank's shard that already had a successful record.
        failed: (video, error) of this rank's failures in this call.
        records: rank 0 only: every merged record in input order (None on other ranks).
    """

    rank: int
    world_size: int
    processed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    records: list[dict[str, Any]] | None = None

    @property
    def any_failed(self) -> bool:
        """True when this rank failed on a video, or (rank 0) any merged record is a failure."""
        return bool(self.failed) or any("error" in r for r in self.records or [])


def shard_file(out_path: str | os.PathLike[str], rank: int) -> Path:
    """The JSON-lines file of ``rank`` for the output ``out_path`` (``out.json`` -> ``out.rank0.jsonl``)."""
    out = Path(out_path)
    return out.with_name(f"{out.stem}.rank{rank}.jsonl")


def _shard_files(out_path: str | os.PathLike[str]) -> dict[int, Path]:
    """Every existing shard file of ``out_path`` by rank."""
    out = Path(out_path)
    pattern = re.compile(rf"{re.escape(out.stem)}\.rank(\d+)\.jsonl")
    if not out.parent.is_dir():
        return {}
    found = {int(m[1]): p for p in out.parent.iterdir() if (m := pattern.fullmatch(p.name))}
    return dict(sorted(found.items()))


def weights_digest(model: torch.nn.Module) -> str:
    """A short identity of a model's weights: SHA-1 over every tensor's name, shape, dtype and
    up to 1024 evenly spaced values (two checkpoints, or a model and its fine-tuned copy, differ)."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 1024)][:1024]
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(sample.to("cpu", torch.float64).numpy().tobytes())
    return digest.hexdigest()[:16]


def job_fingerprint(
    model: torch.nn.Module, task: str, views: tuple[int, int] | str | None = None, **options: Any
) -> dict[str, Any]:
    """The settings that decide a job's results, for :func:`run_sharded`'s ``fingerprint``.

    Args:
        model: the model; its weights (:func:`weights_digest`), labels and preprocessing count.
        task: what is computed (``"predict"``, ``"embed"``, ...).
        views: the test views override, as given to the inference helpers.
        options: anything else that changes results (``top_k``, ``amp``, ``decode_short_side``, ...).
    """
    from uniformerv2.inference.engine import model_labels, view_config

    labels = "\n".join(model_labels(model)).encode("utf-8")
    return {
        "task": task,
        "weights": weights_digest(model),
        "labels": hashlib.sha1(labels).hexdigest()[:16],
        "preprocess": json_safe(dataclasses.asdict(view_config(model, views))),
        **{k: json_safe(v) for k, v in sorted(options.items())},
    }


def _normalised(fingerprint: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fingerprint as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(json_safe(dict(fingerprint or {})), sort_keys=True, allow_nan=False))


def _read_header(path: Path) -> dict[str, Any] | None:
    """The fingerprint in a shard file's first line; None when it has none (an earlier version)."""
    with open(path, encoding="utf-8") as handle:
        try:
            header = json.loads(handle.readline())
        except json.JSONDecodeError:
            return None
    return header.get("fingerprint") if isinstance(header, dict) and "video" not in header else None


def _differences(before: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ (``views``, ``preprocess.num_crops``)."""
    names = []
    for key in sorted({*before, *now}):
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            names += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            names.append(f"{prefix}{key}")
    return names


def _check_resumable(out_path: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
    """Refuse when a shard file of ``out_path`` was made with other settings."""
    for path in _shard_files(out_path).values():
        earlier = _read_header(path)
        if earlier == fingerprint:
            continue
        if earlier is None:
            what = "by an earlier version that did not record its settings"
        else:
            what = "with other settings (" + ", ".join(_differences(earlier, fingerprint)) + ")"
        raise ResumeError(
            f"{out_path}: the partial results in {path.name} were made {what}; "
            "rerun with --overwrite (the overwrite argument in Python) to discard them, or choose another output"
        )


def read_records(out_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Every record in the shard files of ``out_path``, the last one per video.

    A line cut short by a crash is ignored (that video is simply done again).
    """
    records: dict[str, dict[str, Any]] = {}
    for path in _shard_files(out_path).values():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "video" in record:
                    records[str(record["video"])] = record
    return records


def _json_line(obj: Mapping[str, Any]) -> str:
    return json.dumps(json_safe(obj), ensure_ascii=False, allow_nan=False) + "\n"


def _open_shard(path: Path, fingerprint: dict[str, Any], fresh: bool) -> io.TextIOWrapper:
    """Open for appending (a new or ``fresh`` file starts with the fingerprint header); a last
    line cut short by a crash is terminated first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w" if fresh else "a+", encoding="utf-8")
    if handle.tell() == 0:
        handle.write(_json_line({"fingerprint": fingerprint}))
        handle.flush()
    else:
        handle.seek(handle.tell() - 1)
        if handle.read(1) != "\n":
            handle.write("\n")
    return handle


def run_sharded(
    paths: Sequence[str | os.PathLike[str]],
    job: Job,
    out_path: str | os.PathLike[str],
    *,
    write: Callable[[list[dict[str, Any]]], None] | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> ShardSummary:
    """Run ``job`` on this rank's shard of ``paths``, resumably, and merge on rank 0.

    Args:
        paths: every video of the job (the same list, in the same order, on every rank).
        job: called once with the videos of this shard still to do; yields one record per video
            (``{"video": path, ...}``, plus ``"error": message`` when the video failed).
        out_path: the final output; shard files go next to it (:func:`shard_file`).
        write: rank 0 calls it with the merged records; the default writes them to ``out_path``
            as a JSON list (:func:`uniformerv2.atomic.atomic_write_json`).
        rank: overrides ``RANK``.
        world_size: overrides ``WORLD_SIZE``.
        fingerprint: the settings the results depend on (:func:`job_fingerprint`; JSON-able);
            earlier results are resumed only when they were made with the same.
        overwrite: discard earlier results of this output instead of resuming them.

    Returns:
        A :class:`ShardSummary` (with the merged records on rank 0).

    Raises:
        ResumeError: the output holds results made with another fingerprint and ``overwrite`` is False.
    """
    env_rank, env_world, _ = dist_env()
    rank = env_rank if rank is None else rank
    world = env_world if world_size is None else world_size
    videos = [os.fspath(p) for p in paths]
    settings = _normalised(fingerprint)
    if overwrite:
        finished: set[str] = set()
        if rank == 0:  # shards of ranks this run does not have; the others are rewritten by their rank
            for other, path in _shard_files(out_path).items():
                if other >= world:
                    path.unlink()
    else:
        _check_resumable(out_path, settings)
        finished = {v for v, r in read_records(out_path).items() if "error" not in r}
    shard = videos[rank::world]
    todo = [v for v in shard if v not in finished]
    summary = ShardSummary(rank, world, skipped=len(shard) - len(todo))
    _logger.info("rank %d/%d: %d videos, %d already done", rank, world, len(shard), summary.skipped)
    path = shard_file(out_path, rank)
    with _open_shard(path, settings, fresh=overwrite) as handle:
        for record in job(todo) if todo else ():
            try:
                handle.write(_json_line(record))
                handle.flush()
            except OSError as exc:
                raise output_error(path, exc) from exc
            summary.processed += 1
            if "error" in record:
                summary.failed.append((str(record["video"]), str(record["error"])))
    barrier(world)
    if rank == 0:
        merged = read_records(out_path)
        summary.records = [merged[v] for v in videos if v in merged]
        (write or (lambda records: atomic_write_json(out_path, records)))(summary.records)
    return summary
