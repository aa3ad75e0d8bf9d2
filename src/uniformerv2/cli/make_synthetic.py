"""``uniformerv2 make-synthetic``: write mp4 videos whose two classes differ only in temporal order."""

from __future__ import annotations

import argparse
import sys
from typing import Any

_EXAMPLE = """examples:
  uniformerv2 make-synthetic data/direction
  uniformerv2 make-synthetic data/approach --task approach --num-videos 600 --frames 16 --size 64
  uniformerv2 make-synthetic data/direction_shuffled --time-order shuffled   # the time-shuffled control

Writes DIR/videos/*.mp4, DIR/train.csv and DIR/val.csv ("path,label", paths relative to DIR: train
with data.root=DIR) and DIR/labels.txt. Class 1 is class 0 played backwards. Exit status: 0 on
success, 2 for unusable settings or an output that cannot be written."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "make-synthetic",
        help="write a synthetic video data set whose classes differ only in temporal order",
        description="Write mp4 videos of an object moving left->right vs right->left (direction) or "
        "growing vs shrinking (approach), with random shapes, sizes, colours, backgrounds and noise.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", metavar="DIR", help="output directory (created)")
    parser.add_argument("--num-videos", type=int, default=400, help="videos in total, train + val (default 400)")
    parser.add_argument("--task", choices=("direction", "approach"), default="direction", help="default direction")
    parser.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels, even (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--val-fraction", type=float, default=0.25, help="share of videos in val.csv (default 0.25)")
    parser.add_argument(
        "--time-order",
        choices=("natural", "shuffled"),
        default="natural",
        help="'shuffled' writes each video's frames in a random order: the time-shuffled control",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uniformerv2.errors import UniFormerV2Error
    from uniformerv2.synthetic import SyntheticDataError, make_synthetic

    try:
        result = make_synthetic(
            args.out_dir,
            num_videos=args.num_videos,
            task=args.task,
            frames=args.frames,
            size=args.size,
            seed=args.seed,
            val_fraction=args.val_fraction,
            time_order=args.time_order,
            progress=not args.no_progress,
        )
    except SyntheticDataError as exc:
        print(f"error: {args.out_dir}: {exc}", file=sys.stderr)
        return 2
    except UniFormerV2Error as exc:  # the output cannot be written; the message names the file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {result.num_train} training and {result.num_val} validation videos to {result.root} "
        f"({result.train_list.name}, {result.val_list.name}, {result.labels_file.name})"
    )
    return 0
