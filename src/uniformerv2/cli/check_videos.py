"""``uniformerv2 check-videos``: find unreadable or too-short videos before training or inference."""

from __future__ import annotations

import argparse
import math
from typing import Any

from uniformerv2.atomic import atomic_write_csv, atomic_write_json
from uniformerv2.cli._jobs import guarded, prepare_outputs
from uniformerv2.cli._options import non_negative_int, positive_int
from uniformerv2.errors import printable
from uniformerv2.video.check import check_videos
from uniformerv2.video.inputs import collect_videos

_EXAMPLE = """examples:
  uniformerv2 check-videos clip1.mp4 clip2.webm frames_dir/
  uniformerv2 check-videos videos/ --min-frames 8 --json report.json
  uniformerv2 check-videos train.csv --root /data/k400 --csv report.csv
  uniformerv2 check-videos train.csv --fast          # header check only
  uniformerv2 check-videos train.csv --workers 8      # 8 processes

Every frame is decoded, so damage that training or prediction would hit later is found: corrupt
data mid-file, files cut short (fewer frames than the header promises), frame folders with gaps
or images that do not decode. The "frames" column counts the frames that decode, "header" what
the file (or the numbering of a frame folder) promises. --fast only reads the header and decodes
the first and last frame.

A list file (.csv/.txt) holds one video per line, path first: "path,label" or "path label";
relative paths are relative to --root, or else to the list's folder.
Exit status: 0 when every video is sound (and long enough), 1 otherwise, 2 on a usage error."""

_COLUMNS = ("frames", "header", "fps", "size", "codec", "duration", "status")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-videos",
        help="decode videos completely; report damage, frame counts, fps, size and codec",
        description="Decode-check video files, frame folders or the videos of an annotation list.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="PATH", help="video files, folders, or list files (.csv/.txt)")
    parser.add_argument("--root", help="folder that relative paths in list files are relative to (default: the list's)")
    parser.add_argument(
        "--min-frames", type=positive_int, default=1, help="report videos with fewer frames as bad (default 1)"
    )
    parser.add_argument("--fast", action="store_true", help="check the header and first/last frame only")
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="check videos in N parallel processes (default 0: in this one)",
    )
    parser.add_argument("--json", metavar="OUT", help="write the results as a JSON list")
    parser.add_argument("--csv", metavar="OUT", help="write the results as CSV")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _cells(row: dict[str, Any], fast: bool) -> list[str]:
    def num(v: Any, fmt: str) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    size = f"{row['width']}x{row['height']}" if row["width"] else "-"
    status = "ok" if row["ok"] else f"BAD: {printable(row['error'])}"
    return [
        printable(row["path"]),
        num(row["frames"] if fast else row["decodable"], "d"),
        num(row["header_frames"], "d"),
        num(row["fps"], ".2f"),
        size,
        row["codec"] or "-",
        num(row["duration"], ".2f"),
        status,
    ]


def _print_table(rows: list[dict[str, Any]], fast: bool) -> None:
    table = [["path", *_COLUMNS]] + [_cells(r, fast) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)) + "  " + line[-1])


@guarded
def run(args: argparse.Namespace) -> int:
    """Check the videos; exit code 1 when any is bad, 2 on a usage error."""
    prepare_outputs({"--json": args.json, "--csv": args.csv})
    paths = collect_videos(args.inputs, root=args.root)
    rows = check_videos(paths, args.min_frames, progress=not args.no_progress, fast=args.fast, workers=args.workers)
    _print_table(rows, args.fast)
    bad = sum(not r["ok"] for r in rows)
    print(f"{len(rows) - bad} of {len(rows)} videos ok, {bad} bad")
    if args.json:
        atomic_write_json(args.json, rows)
    if args.csv:
        atomic_write_csv(args.csv, rows, list(rows[0]))
    return 1 if bad else 0
