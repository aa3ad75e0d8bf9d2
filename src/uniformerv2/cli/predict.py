"""`uniformerv2 predict`: top-k classes of video files, directories or list files."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from typing import Any

from uniformerv2.atomic import atomic_write_csv, atomic_write_json
from uniformerv2.cli._jobs import guarded, prepare_outputs, run_options, sharded_or_local
from uniformerv2.cli._options import add_model_args, add_overwrite_arg, add_run_args, add_views_arg, positive_int
from uniformerv2.cli.export import add_runtime_args, load_runtime_model
from uniformerv2.inference import Result, predict_many
from uniformerv2.inference.sharding import job_fingerprint
from uniformerv2.video.inputs import collect_videos

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
    add_views_arg(parser)
    parser.add_argument("--top-k", type=positive_int, default=5, help="classes per video (default 5)")
    parser.add_argument("--json", default=None, help="write all predictions to this JSON file (resumable)")
    parser.add_argument("--csv", default=None, help="write all predictions to this CSV file (resumable)")
    add_run_args(parser)
    add_runtime_args(parser)
    add_overwrite_arg(parser)
    parser.set_defaults(func=run)


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
            atomic_write_json(args.json, records)
        if args.csv:
            columns = (
                ["video"] + [f"{kind}_{i}" for i in range(1, args.top_k + 1) for kind in ("label", "score")] + ["error"]
            )
            atomic_write_csv(args.csv, (_csv_row(r) for r in records), columns)

    return write


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"video": record["video"], "error": record.get("error", "")}
    for i, pred in enumerate(record.get("predictions", []), 1):
        row[f"label_{i}"], row[f"score_{i}"] = pred["label"], f"{pred['score']:.6f}"
    return row


@guarded
def run(args: argparse.Namespace) -> int:
    """Classify the videos; exit code 1 when any failed, 2 on a usage error."""
    prepare_outputs({"--json": args.json, "--csv": args.csv})
    videos = collect_videos(args.videos)
    model, amp = load_runtime_model(args)

    def results(todo: list[str]) -> Iterator[Result]:
        return predict_many(todo, model, views=args.views, top_k=args.top_k, **{**run_options(args), "amp_dtype": amp})

    fingerprint = job_fingerprint(
        model, "predict", args.views, top_k=args.top_k, amp=amp, decode_short_side=args.decode_short_side
    )
    out = args.json or args.csv
    return sharded_or_local(
        videos, results, _record, out, _writer(args), _format, fingerprint=fingerprint, overwrite=args.overwrite
    )
