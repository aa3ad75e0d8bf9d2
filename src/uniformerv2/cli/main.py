"""`uniformerv2` console script: one sub-command per module in this package.

Each sub-command module defines ``add_parser(subparsers)`` (which registers its parser and sets
``func``) so that this file stays a dispatcher.

Whatever a command does not handle itself ends here as one line: a package error exits with 2, any
other exception with 1 and a hint to rerun with ``UNIFORMERV2_DEBUG=1`` for the traceback, and
Ctrl-C prints ``interrupted`` and exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from uniformerv2.errors import UniFormerV2Error

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
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("UNIFORMERV2_DEBUG", "") not in ("", "0"):
            raise
        return _last_resort(exc)


def _last_resort(exc: Exception) -> int:
    """One line for an exception no command handled: 2 for the package's own errors, else 1."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, UniFormerV2Error):
        print(f"error: {text or type(exc).__name__}", file=sys.stderr)
        return 2
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    print(f"error: unexpected failure ({detail}); rerun with UNIFORMERV2_DEBUG=1 for the traceback", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
