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
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uniformerv2.atomic import atomic_write_json, json_safe
from uniformerv2.runtime import barrier, dist_env

__all__ = ["Job", "ShardSummary", "shard_file", "read_records", "run_sharded"]

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


def read_records(out_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Every record in the shard files of ``out_path``, the last one per video.

    A line cut short by a crash is ignored (that video is simply done again).
    """
    out = Path(out_path)
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(out.parent.glob(f"{out.stem}.rank*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "video" in record:
                    records[str(record["video"])] = record
    return records


def _open_append(path: Path) -> io.TextIOWrapper:
    """Open for appending; a last line cut short by a crash is terminated first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    if handle.tell() > 0:
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

    Returns:
        A :class:`ShardSummary` (with the merged records on rank 0).
    """
    env_rank, env_world, _ = dist_env()
    rank = env_rank if rank is None else rank
    world = env_world if world_size is None else world_size
    videos = [os.fspath(p) for p in paths]
    finished = {v for v, r in read_records(out_path).items() if "error" not in r}
    shard = videos[rank::world]
    todo = [v for v in shard if v not in finished]
    summary = ShardSummary(rank, world, skipped=len(shard) - len(todo))
    _logger.info("rank %d/%d: %d videos, %d already done", rank, world, len(shard), summary.skipped)
    with _open_append(shard_file(out_path, rank)) as handle:
        for record in job(todo) if todo else ():
            handle.write(json.dumps(json_safe(record), ensure_ascii=False, allow_nan=False) + "\n")
            handle.flush()
            summary.processed += 1
            if "error" in record:
                summary.failed.append((str(record["video"]), str(record["error"])))
    barrier(world)
    if rank == 0:
        merged = read_records(out_path)
        summary.records = [merged[v] for v in videos if v in merged]
        (write or (lambda records: atomic_write_json(out_path, records)))(summary.records)
    return summary
