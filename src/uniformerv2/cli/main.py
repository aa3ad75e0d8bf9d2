"""`uniformerv2` console script: one sub-command per module in this package.

Each sub-command module defines ``add_parser(subparsers)`` (which registers its parser and sets
``func``) so that this file stays a dispatcher.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMANDS = (
    "predict",
    "embed",
    "timeline",
    "eval",
    "check_videos",
    "convert",
    "export",
    "flops",
    "zoo",
    "train",
    "make_synthetic",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uniformerv2", description="UniFormerV2 video recognition tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"uniformerv2.cli.{name}")
        except ModuleNotFoundError as exc:  # a command whose module is not present yet
            if exc.name != f"uniformerv2.cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
