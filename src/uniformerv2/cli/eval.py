"""`uniformerv2 eval`: multi-view accuracy of a checkpoint on a labelled list of videos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uniformerv2.cli._jobs import check_checkpoint_path, check_plot, guarded, prepare_outputs, report_failures
from uniformerv2.cli._options import add_run_args, add_views_arg
from uniformerv2.evaluation import evaluate
from uniformerv2.runtime import resolve_device

_EXAMPLE = """examples:
  uniformerv2 eval k400/val.csv --model uniformerv2-b16-k400-k710-8x224 --root /data/k400 --json k400_val.json
  uniformerv2 eval val.csv --checkpoint runs/ucf101/best.pt --views 1x1 --predictions preds.csv --plot confusion.png
  uniformerv2 eval val.csv --checkpoint mmaction2_b16_k400.pth --labels kinetics400_alphabetical
  uniformerv2 eval ssv2/val.txt --model uniformerv2-b16-sthv2-16x224 --format frames --root /data/ssv2/frames
  torchrun --nproc-per-node 8 -m uniformerv2 eval val.csv --model NAME --json val.json   # sharded, resumable
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``eval`` sub-command."""
    parser = subparsers.add_parser(
        "eval",
        help="top-1/top-5/mean-class accuracy of a checkpoint on a labelled list",
        description="Evaluate a checkpoint with its own multi-view test protocol (softmax per view, averaged): "
        "top-1, top-5 and mean per-class accuracy, confusion matrix and per-video predictions. The protocol is "
        "printed first. Videos that cannot be read are listed, excluded from the metrics, and make the exit code 1.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "list",
        help="annotation list: `path,label` (or `path label`) lines, or `frame_dir num_frames label`; "
        "labels are class indices or class names",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--model", default=None, help="zoo name, model directory or Hub id (default: the zoo's default model)"
    )
    group.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint file: official .pyth, MMAction2 .pth, .safetensors, training best.pt/last.pt",
    )
    parser.add_argument(
        "--labels",
        default=None,
        metavar="FILE|SET",
        help="class names of the list's label indices (a label file, or a shipped set such as "
        "kinetics400_alphabetical): indices are mapped to the checkpoint's classes by name, which checks "
        "the list's class order; for a checkpoint without class names they name its classes",
    )
    add_views_arg(parser)
    parser.add_argument("--root", default=None, help="folder of relative list paths (default: the list's folder)")
    parser.add_argument(
        "--format",
        choices=("auto", "video", "frames"),
        default="auto",
        help="list layout: video (`path,label`), frames (`dir num_frames label`) or auto (default)",
    )
    parser.add_argument("--separator", default=None, help="field separator of video lists (default: `,` or spaces)")
    parser.add_argument("--json", default=None, help="write the report (protocol, metrics, confusion, predictions)")
    parser.add_argument("--predictions", default=None, metavar="CSV", help="write one row per video to this CSV")
    parser.add_argument("--plot", default=None, help="save the confusion matrix picture (.png/.svg/.pdf)")
    parser.add_argument(
        "--overwrite", action="store_true", help="discard stored results of another model or setting and start again"
    )
    add_run_args(parser)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    """Evaluate; exit code 1 when any video failed, 2 on a usage error."""
    from uniformerv2.zoo import DEFAULT_MODEL

    if args.checkpoint:
        check_checkpoint_path(args.checkpoint)
    if not Path(args.list).is_file():
        raise ValueError(f"{args.list}: no such list file")
    if args.plot:
        check_plot(args.plot)
    prepare_outputs({"--json": args.json, "--predictions": args.predictions, "--plot": args.plot})
    result = evaluate(
        args.list,
        args.checkpoint or args.model or DEFAULT_MODEL,
        views=args.views,
        labels=args.labels,
        root=args.root,
        list_format=args.format,
        separator=args.separator,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=resolve_device(args.device),
        amp_dtype=args.amp,
        decode_short_side=args.decode_short_side,
        output=args.json,
        predictions_csv=args.predictions,
        plot=args.plot,
        overwrite=args.overwrite,
        progress=sys.stderr.isatty(),
        verbose=True,
    )
    if result is None:  # a rank other than 0 under torchrun: rank 0 reports
        return 0
    print(result.summary(), flush=True)
    return report_failures(result.failures, result.total)
