"""``uniformerv2 check-videos``: find unreadable or too-short videos before training or inference."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from typing import Any

from uniformerv2.errors import InputError
from uniformerv2.video.check import check_videos
from uniformerv2.video.inputs import collect_videos

_EXAMPLE = """examples:
  uniformerv2 check-videos clip1.mp4 clip2.webm
  uniformerv2 check-videos videos/ --min-frames 8 --json report.json
  uniformerv2 check-videos train.csv --root /data/k400 --csv report.csv

A list file (.csv/.txt) holds one video per line, path first: "path,label" or "path label".
Exit status: 0 when every video is readable (and long enough), 1 otherwise."""

_COLUMNS = ("frames", "fps", "size", "codec", "duration", "status")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-videos",
        help="check that videos decode; report frames, fps, size and codec",
        description="Decode-check video files, frame folders or the videos of an annotation list.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="PATH", help="video files, folders, or list files (.csv/.txt)")
    parser.add_argument(
        "--root", help="folder that relative paths in list files are relative to (default: the list's folder)"
    )
    parser.add_argument("--min-frames", type=int, default=1, help="report videos with fewer frames as bad (default 1)")
    parser.add_argument("--json", metavar="OUT", help="write the results as a JSON list")
    parser.add_argument("--csv", metavar="OUT", help="write the results as CSV")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _cells(row: dict[str, Any]) -> list[str]:
    def num(v: Any, fmt: str) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    size = f"{row['width']}x{row['height']}" if row["width"] else "-"
    status = "ok" if row["ok"] else f"BAD: {row['error']}"
    return [
        row["path"],
        num(row["frames"], "d"),
        num(row["fps"], ".2f"),
        size,
        row["codec"] or "-",
        num(row["duration"], ".2f"),
        status,
    ]


def _print_table(rows: list[dict[str, Any]]) -> None:
    table = [["path", *_COLUMNS]] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)) + "  " + line[-1])


def run(args: argparse.Namespace) -> int:
    try:
        paths = collect_videos(args.inputs, root=args.root)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = check_videos(paths, args.min_frames, progress=not args.no_progress)
    _print_table(rows)
    bad = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - bad} of {len(rows)} videos ok, {bad} bad")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2, ensure_ascii=False)
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["path"])
            writer.writeheader()
            writer.writerows(rows)
    return 1 if bad else 0
