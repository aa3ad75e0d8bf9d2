"""What the inference commands share at run time: error handling, the model, and batch jobs.

Errors follow one rule: a usage or configuration problem is one ``error: ...`` line and exit
status 2; videos that fail are listed one ``error: <file>: <cause>`` line each after the others
finished, with exit status 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from uniformerv2.atomic import remove_stale_temps
from uniformerv2.errors import CheckpointError, OutputError, UniFormerV2Error, printable, special_file_problem
from uniformerv2.inference import Result
from uniformerv2.inference.sharding import run_sharded
from uniformerv2.runtime import dist_env, resolve_device


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn expected errors (bad model name, checkpoint, labels, input) into ``error: ...`` and exit code 2."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except KeyError as exc:
            return fail(exc.args[0] if exc.args else exc)
        except (UniFormerV2Error, ValueError, OSError) as exc:
            return fail(exc)

    return wrapper


def fail(message: object, code: int = 2) -> int:
    """Print the first line of ``message`` as ``error: ...``; returns ``code``."""
    lines = str(message).strip().splitlines()
    print(f"error: {printable(lines[0]) if lines else 'failed'}", file=sys.stderr)
    return code


def prepare_outputs(files: Mapping[str, str | None], directories: Mapping[str, str | None] | None = None) -> None:
    """Check, before any work, that the outputs can be written, and clean up after killed runs.

    Args:
        files: option name (``"--json"``) -> output file, or None when not given.
        directories: option name -> output directory, or None.

    Each output directory is created when missing, must be writable, and loses the temporary files
    a killed run left behind (:func:`uniformerv2.atomic.remove_stale_temps`).

    Raises:
        OutputError: an empty name, two options naming the same file, a file that is a directory,
            or a directory that cannot be created or written.
    """
    seen: dict[str, str] = {}
    folders = []
    for option, path in files.items():
        if path is None:
            continue
        if not str(path).strip():
            raise OutputError(f"{option}: the output file name is empty")
        resolved = os.path.realpath(path)
        if resolved in seen:
            raise OutputError(f"{seen[resolved]} and {option} name the same file {path}; give each its own file")
        seen[resolved] = option
        if Path(path).is_dir():
            raise OutputError(f"{printable(path)}: is a directory; {option} needs a file name")
        problem = special_file_problem(path)
        if problem:
            raise OutputError(f"{printable(path)}: {problem}; {option} needs a file name")
        folders.append(Path(path).parent)
    for option, path in (directories or {}).items():
        if path is not None and not str(path).strip():
            raise OutputError(f"{option}: the output directory name is empty")
        if path is not None:
            folders.append(Path(path))
    for folder in folders:
        _writable_directory(folder)
        remove_stale_temps(folder)


def check_plot(path: str) -> None:
    """Refuse a --plot that cannot be drawn (no matplotlib, unknown image type) before any work starts."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise OutputError(f"{printable(path)}: --plot needs matplotlib: pip install 'uniformerv2[plot]'") from None

    kinds = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in kinds:
        what = f"cannot draw a .{suffix} image" if suffix else "no image suffix"
        raise OutputError(f"{printable(path)}: {what}; use one of {', '.join(sorted(kinds))}")


def _writable_directory(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{folder}: exists and is not a directory") from None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create this directory ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: cannot write in this directory (permission denied)")


def load_cli_model(args: argparse.Namespace) -> Any:
    """The model named by --model/--checkpoint (zoo default otherwise) with --labels applied."""
    from uniformerv2.api import load_model
    from uniformerv2.zoo import DEFAULT_MODEL, read_label_file

    for option, value in (("--checkpoint", args.checkpoint), ("--model", args.model)):
        if value is not None and not value.strip():
            raise ValueError(f"{option}: the name is empty")
    source = args.checkpoint or args.model or DEFAULT_MODEL
    if args.checkpoint:
        check_checkpoint_path(args.checkpoint)
    device = resolve_device(args.device)
    try:
        model = load_model(source, device=device)
    except CheckpointError as exc:
        if str(source) in str(exc):
            raise
        raise CheckpointError(f"{source}: {exc}") from exc  # name the file the user gave
    if args.labels:
        model.pretrained_cfg["labels"] = read_label_file(args.labels, expected=model.config.num_classes)
    return model


def check_checkpoint_path(path: str) -> None:
    """Refuse a --checkpoint that is missing or not a regular file, naming it and the cause."""
    problem = special_file_problem(path) or (None if Path(path).exists() else "no such checkpoint file")
    if problem:
        raise CheckpointError(f"{printable(path)}: {problem}")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the inference helpers from --batch-size/--workers/--amp/--decode-short-side."""
    return {
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "amp_dtype": args.amp,
        "decode_short_side": args.decode_short_side,
        "progress": sys.stderr.isatty(),
    }


def report_failures(failures: list[tuple[str, str]], total: int) -> int:
    """Print one ``error: VIDEO: reason`` line per failure; returns the exit code (0 or 1)."""
    if failures:
        print(f"{len(failures)} of {total} videos failed:", file=sys.stderr)
        for video, reason in failures:
            print(f"error: {printable(video)}: {printable(reason)}", file=sys.stderr)
    return 1 if failures else 0


def sharded_or_local(
    videos: list[str],
    results: Callable[[list[str]], Iterator[Result]],
    to_record: Callable[[Result], dict[str, Any]],
    out_path: str | None,
    write: Callable[[list[dict[str, Any]]], None] | None,
    show: Callable[[dict[str, Any]], str],
    *,
    fingerprint: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> int:
    """Run a per-video job, resumably sharded when there is an output file, and report failures.

    Under torchrun (WORLD_SIZE > 1) an output file is required, every rank runs its shard and
    rank 0 merges; rank 0 lists every failure, other ranks their own. ``show`` formats each
    successful record for stdout. ``fingerprint`` and ``overwrite`` are those of
    :func:`uniformerv2.inference.sharding.run_sharded`.
    """
    _, world, _ = dist_env()

    def job(todo: list[str]) -> Iterator[dict[str, Any]]:
        for result in results(todo):
            record = to_record(result)
            if "error" not in record:
                print(show(record), flush=True)
            yield record

    if out_path is None:
        if world > 1:
            raise ValueError("under torchrun, pass an output file (--json/--csv, or --out) so ranks can merge")
        return report_failures([(r["video"], r["error"]) for r in job(videos) if "error" in r], len(videos))
    summary = run_sharded(videos, job, out_path, write=write, fingerprint=fingerprint, overwrite=overwrite)
    if summary.skipped:
        print(f"rank {summary.rank}: skipped {summary.skipped} videos already done", file=sys.stderr)
    if summary.records is not None:
        failures = [(str(r["video"]), str(r["error"])) for r in summary.records if "error" in r]
    else:
        failures = summary.failed
    return report_failures(failures, len(videos))
