"""Options shared by the inference commands (predict, embed, timeline) and their value types.

Each type function raises :class:`argparse.ArgumentTypeError` with a message in the user's terms,
so argparse prints ``argument --x: <message>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import math

from uniformerv2.inference.engine import parse_views
from uniformerv2.preprocess import MAX_CLIPS


def _whole_number(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _whole_number(text, "a whole number >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _whole_number(text, "a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 1..65535."""
    value = _whole_number(text, "a port number 1..65535")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1..65535, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def views(text: str) -> tuple[int, int]:
    """``CLIPSxCROPS`` (crops 1 or 3, at most :data:`~uniformerv2.preprocess.MAX_CLIPS` clips)."""
    try:
        clips, crops = parse_views(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected CLIPSxCROPS with crops 1 or 3 (e.g. 4x3, 1x1), got {text!r}"
        ) from None
    if clips > MAX_CLIPS:
        raise argparse.ArgumentTypeError(f"at most {MAX_CLIPS} clips, got {text!r}")
    return clips, crops


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


def add_views_arg(parser: argparse.ArgumentParser) -> None:
    """--views."""
    parser.add_argument(
        "--views", type=views, default=None, help="CLIPSxCROPS, e.g. 4x3 or 1x1 (default: the checkpoint's)"
    )


def add_device_args(parser: argparse.ArgumentParser, batch_size: int) -> None:
    """--device / --batch-size / --amp."""
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps or xpu (default: best available)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch_size,
        help=f"most views per forward pass (default {batch_size})",
    )
    parser.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="mixed precision")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """--device / --batch-size / --workers / --amp / --decode-short-side / --overwrite of the batch commands."""
    add_device_args(parser, batch_size=12)
    parser.add_argument(
        "--workers", type=non_negative_int, default=2, help="decoding worker processes (default 2; 0 = none)"
    )
    add_decode_arg(parser)


def add_overwrite_arg(parser: argparse.ArgumentParser) -> None:
    """--overwrite."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="discard partial results in the output made with other settings instead of refusing to resume",
    )


def add_decode_arg(parser: argparse.ArgumentParser) -> None:
    """--decode-short-side."""
    parser.add_argument(
        "--decode-short-side",
        type=positive_int,
        default=None,
        metavar="PX",
        help="decode files with the short side scaled to at most PX (faster, less memory on 1080p/4K; "
        "pixels differ slightly from the official pipeline; default: full resolution)",
    )
