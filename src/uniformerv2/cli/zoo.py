"""`uniformerv2 zoo`: list the registered checkpoints as a table or as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json

from uniformerv2.zoo.pretrained import (
    PretrainedCfg,
    get_pretrained_cfg,
    list_pretrained,
)

_EXAMPLE = """examples:
  uniformerv2 zoo                 # every checkpoint
  uniformerv2 zoo 'l14*k400'      # shell pattern, or a plain substring such as sthv2
  uniformerv2 zoo k400 --json     # machine-readable, all fields
"""

_COLUMNS = ("name", "arch", "frames", "classes", "labels", "views", "top1", "sources")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``zoo`` sub-command."""
    parser = subparsers.add_parser(
        "zoo",
        help="list pretrained checkpoints",
        description="List the registered checkpoints: architecture, input, label order, test views, "
        "reported top-1 and download sources.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("filter", nargs="?", default=None, help="shell pattern or substring of the name")
    parser.add_argument("--json", action="store_true", help="print a JSON list with every field")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the matching entries; returns 1 when nothing matches."""
    cfgs = [get_pretrained_cfg(name) for name in list_pretrained(args.filter)]
    if args.json:
        print(json.dumps([dataclasses.asdict(cfg) for cfg in cfgs], indent=2))
    elif cfgs:
        print(_table([_row(cfg) for cfg in cfgs]))
    else:
        print(f"no checkpoint matches {args.filter!r}")
    return 0 if cfgs else 1


def _row(cfg: PretrainedCfg) -> dict[str, str]:
    clips, crops = cfg.views
    sources = ",".join(s.kind + ("(dead)" if "dead" in s.status else "") for s in cfg.sources)
    return {
        "name": cfg.name,
        "arch": cfg.arch,
        "frames": f"{cfg.preprocess.num_frames}x{cfg.preprocess.crop_size}",
        "classes": str(cfg.num_classes),
        "labels": cfg.labels or "-",
        "views": f"{clips}x{crops}",
        "top1": "-" if cfg.top1 is None else f"{cfg.top1:.1f}",
        "sources": sources,
    }


def _table(rows: list[dict[str, str]]) -> str:
    widths = {col: max(len(col), *(len(row[col]) for row in rows)) for col in _COLUMNS}
    header = dict(zip(_COLUMNS, _COLUMNS, strict=False))
    return "\n".join("  ".join(row[col].ljust(widths[col]) for col in _COLUMNS).rstrip() for row in [header, *rows])
