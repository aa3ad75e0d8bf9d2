"""`uniformerv2 timeline`: classify a long video window by window; optional JSON and picture."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from uniformerv2.atomic import atomic_write_json
from uniformerv2.cli._jobs import check_plot, fail, guarded, load_cli_model, prepare_outputs
from uniformerv2.cli._options import add_decode_arg, add_device_args, add_model_args, positive_float, positive_int
from uniformerv2.errors import VideoDecodeError
from uniformerv2.inference import plot_timeline, timeline

_EXAMPLE = """examples:
  uniformerv2 timeline match.mp4 --plot match.png
  uniformerv2 timeline match.mp4 --window-seconds 2 --stride-seconds 1 --json match.json
  uniformerv2 timeline match.mp4 --window 16 --stride 8 --crops 3 --top-k 5
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``timeline`` sub-command."""
    parser = subparsers.add_parser(
        "timeline",
        help="classify a long video with a sliding window",
        description="Score overlapping windows of a long video (decoded as a stream, bounded memory) and print "
        "the top classes of each window. A window spans --window frames and the model sees the checkpoint's "
        "frame count sampled evenly from it.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", help="video file")
    add_model_args(parser)
    window = parser.add_mutually_exclusive_group()
    window.add_argument(
        "--window", type=positive_int, default=None, help="frames per window (default: the model's frame count)"
    )
    window.add_argument("--window-seconds", type=positive_float, default=None, help="window length in seconds instead")
    stride = parser.add_mutually_exclusive_group()
    stride.add_argument(
        "--stride", type=positive_int, default=None, help="frames between window starts (default: half a window)"
    )
    stride.add_argument("--stride-seconds", type=positive_float, default=None, help="stride in seconds instead")
    parser.add_argument(
        "--fps", type=positive_float, default=None, help="frame rate to assume instead of the container's"
    )
    parser.add_argument("--crops", type=int, choices=(1, 3), default=1, help="spatial crops per window (default 1)")
    parser.add_argument("--top-k", type=positive_int, default=3, help="classes per window (default 3)")
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    parser.add_argument(
        "--plot", default=None, help="draw a heatmap of the top classes to this image (.png, .svg, ...)"
    )
    add_device_args(parser, batch_size=8)
    add_decode_arg(parser)
    parser.set_defaults(func=run)


def _line(row: dict[str, Any]) -> str:
    where = (
        f"{row['start']:8.2f}-{row['end']:8.2f} s"
        if row["start"] is not None
        else f"frames {row['start_frame']}-{row['end_frame']}"
    )
    return f"{where}  " + ", ".join(f"{t['label']} {t['score']:.3f}" for t in row["top"])


@guarded
def run(args: argparse.Namespace) -> int:
    """Print one line per window; write --json/--plot when asked. Exit code 1 when the video cannot be read."""
    if args.plot:
        check_plot(args.plot)
    prepare_outputs({"--json": args.json, "--plot": args.plot})
    model = load_cli_model(args)
    try:
        rows = _rows(args, model)
    except VideoDecodeError as exc:
        return fail(exc, code=1)
    except ValueError as exc:  # window/stride that the video cannot give
        return fail(f"{args.video}: {exc}")
    for row in rows:
        print(_line(row))
    if args.json:
        atomic_write_json(args.json, rows)
    if args.plot:
        plot_timeline(rows, args.plot, title=args.video)
    return 0


def _rows(args: argparse.Namespace, model: Any) -> list[dict[str, Any]]:
    return timeline(
        args.video,
        model,
        window=args.window,
        stride=args.stride,
        window_seconds=args.window_seconds,
        stride_seconds=args.stride_seconds,
        fps_override=args.fps,
        crops=args.crops,
        top_k=args.top_k,
        batch_size=args.batch_size,
        device=args.device,
        amp_dtype=args.amp,
        decode_short_side=args.decode_short_side,
        progress=sys.stderr.isatty(),
    )
