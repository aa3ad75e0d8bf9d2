"""`uniformerv2 predict`: top-k classes of video files, directories or list files.

Also holds the options and error handling that ``embed`` and ``timeline`` share.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from uniformerv2.errors import CheckpointError, UniFormerV2Error
from uniformerv2.inference._predict import predict_many
from uniformerv2.inference.distributed import (
    dist_env,
    run_sharded,
    write_csv,
    write_json,
)
from uniformerv2.inference.engine import Result, parse_views, resolve_device
from uniformerv2.inference.inputs import collect_videos

_EXAMPLE = """examples:
  uniformerv2 predict assets/sample.mp4
  uniformerv2 predict videos/ --views 1x1 --top-k 3 --csv preds.csv
  uniformerv2 predict list.txt --checkpoint k400_b16.pyth --labels classes.txt --json preds.json
  torchrun --nproc-per-node 4 -m uniformerv2 predict videos/ --json preds.json   # sharded, resumable
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``predict`` sub-command."""
    parser = subparsers.add_parser(
        "predict",
        help="classify videos",
        description="Classify videos with the checkpoint's own multi-view test protocol (softmax per view, "
        "averaged). Videos that cannot be read are listed at the end; the others still finish (exit code 1).",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("videos", nargs="+", help="video files, directories (searched recursively) or .txt/.csv lists")
    add_model_args(parser)
    parser.add_argument(
        "--views", type=parse_views, default=None, help="CLIPSxCROPS, e.g. 4x3 or 1x1 (default: the checkpoint's)"
    )
    parser.add_argument("--top-k", type=int, default=5, help="classes per video (default 5)")
    parser.add_argument("--json", default=None, help="write all predictions to this JSON file (resumable)")
    parser.add_argument("--csv", default=None, help="write all predictions to this CSV file (resumable)")
    add_run_args(parser)
    parser.set_defaults(func=run)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--model / --checkpoint / --labels."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--model", default=None, help="zoo name, model directory or Hub id (default: the zoo's default model)"
    )
    group.add_argument(
        "--checkpoint", default=None, help="checkpoint file (official .pyth, MMAction2 .pth, .safetensors)"
    )
    parser.add_argument("--labels", default=None, help="class names file (one per line, or index,name) in head order")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """--device / --batch-size / --workers / --amp / --decode-short-side."""
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: best available)")
    parser.add_argument("--batch-size", type=int, default=12, help="most views per forward pass (default 12)")
    parser.add_argument("--workers", type=int, default=2, help="decoding worker processes (default 2; 0 = none)")
    parser.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="mixed precision")
    add_decode_arg(parser)


def add_decode_arg(parser: argparse.ArgumentParser) -> None:
    """--decode-short-side."""
    parser.add_argument(
        "--decode-short-side",
        type=int,
        default=None,
        metavar="PX",
        help="decode files with the short side scaled to at most PX (faster, less memory on 1080p/4K; "
        "pixels differ slightly from the official pipeline; default: full resolution)",
    )


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn expected errors (bad model name, checkpoint, labels, input) into ``error: ...`` and exit code 2."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except KeyError as exc:
            return _fail(exc.args[0] if exc.args else exc)
        except (UniFormerV2Error, ValueError, OSError) as exc:
            return _fail(exc)

    return wrapper


def _fail(message: object) -> int:
    lines = str(message).strip().splitlines()
    print(f"error: {lines[0] if lines else 'failed'}", file=sys.stderr)
    return 2


def load_cli_model(args: argparse.Namespace) -> Any:
    """The model named by --model/--checkpoint (zoo default otherwise) with --labels applied."""
    from uniformerv2.api import load_model
    from uniformerv2.zoo import DEFAULT_MODEL, read_label_file

    source = args.checkpoint or args.model or DEFAULT_MODEL
    if args.checkpoint and not Path(args.checkpoint).exists():
        raise ValueError(f"{args.checkpoint}: no such checkpoint file")
    try:
        model = load_model(source, device=resolve_device(args.device))
    except CheckpointError as exc:
        if str(source) in str(exc):
            raise
        raise CheckpointError(f"{source}: {exc}") from exc  # name the file the user gave
    if args.labels:
        model.pretrained_cfg["labels"] = read_label_file(args.labels, expected=model.config.num_classes)
    return model


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the inference helpers from --batch-size/--workers/--amp."""
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
            print(f"error: {video}: {reason}", file=sys.stderr)
    return 1 if failures else 0


def sharded_or_local(
    videos: list[str],
    results: Callable[[list[str]], Iterator[Result]],
    to_record: Callable[[Result], dict[str, Any]],
    out_path: str | None,
    write: Callable[[list[dict[str, Any]]], None] | None,
    show: Callable[[dict[str, Any]], str],
) -> int:
    """Run a per-video job, resumably sharded when there is an output file, and report failures.

    Under torchrun (WORLD_SIZE > 1) an output file is required, every rank runs its shard and
    rank 0 merges; rank 0 lists every failure, other ranks their own. ``show`` formats each
    successful record for stdout.
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
    summary = run_sharded(videos, job, out_path, write=write)
    if summary.skipped:
        print(f"rank {summary.rank}: skipped {summary.skipped} videos already done", file=sys.stderr)
    if summary.records is not None:
        failures = [(str(r["video"]), str(r["error"])) for r in summary.records if "error" in r]
    else:
        failures = summary.failed
    return report_failures(failures, len(videos))


def _format(record: dict[str, Any]) -> str:
    rows = [f"  {i:>2}. {p['score']:.4f}  {p['label']}" for i, p in enumerate(record["predictions"], 1)]
    return "\n".join([record["video"], *rows])


def _record(result: Result) -> dict[str, Any]:
    if not result.ok:
        return {"video": result.video, "error": result.error}
    return {"video": result.video, "predictions": result.value}


def _writer(args: argparse.Namespace) -> Callable[[list[dict[str, Any]]], None]:
    def write(records: list[dict[str, Any]]) -> None:
        if args.json:
            write_json(records, args.json)
        if args.csv:
            columns = (
                ["video"] + [f"{kind}_{i}" for i in range(1, args.top_k + 1) for kind in ("label", "score")] + ["error"]
            )
            write_csv((_csv_row(r) for r in records), args.csv, columns)

    return write


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"video": record["video"], "error": record.get("error", "")}
    for i, pred in enumerate(record.get("predictions", []), 1):
        row[f"label_{i}"], row[f"score_{i}"] = pred["label"], f"{pred['score']:.6f}"
    return row


@guarded
def run(args: argparse.Namespace) -> int:
    """Classify the videos; exit code 1 when any failed, 2 on a usage error."""
    videos = collect_videos(args.videos)
    model = load_cli_model(args)

    def results(todo: list[str]) -> Iterator[Result]:
        return predict_many(todo, model, views=args.views, top_k=args.top_k, **run_options(args))

    return sharded_or_local(videos, results, _record, args.json or args.csv, _writer(args), _format)
