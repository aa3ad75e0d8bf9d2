"""`uniformerv2 convert`: official / MMAction2 checkpoints to our model directory and back.

The classifier rows can be re-ordered on the way, e.g. between MMAction2's alphabetical Kinetics
order and the official one: ``--labels-from`` names the source's label order (default: what the
checkpoint is known or guessed to carry), ``--labels-to`` the wanted order; rows are permuted by
name (:func:`uniformerv2.weights.label_permutation`), and a target list naming a subset of the
classes keeps only those rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from uniformerv2.atomic import atomic_torch_save
from uniformerv2.cli._jobs import guarded, prepare_outputs
from uniformerv2.errors import OutputError
from uniformerv2.weights import (
    from_ours,
    label_permutation,
    permute_head,
    save_pretrained,
)

_EXAMPLE = """examples:
  uniformerv2 convert k400+k710_uniformerv2_b16_8x224.pyth b16-k400/          # official -> ours
  uniformerv2 convert b16-k400/ b16-k400.pyth                                  # ours -> official
  uniformerv2 convert mmaction2_b16.pth b16-k400/ \\
      --labels-from kinetics400_alphabetical --labels-to kinetics400          # MMAction2 -> ours, official order
  uniformerv2 convert b16-k400/ b16.pth --to mmaction2 --labels-to kinetics400_alphabetical

--labels-from/--labels-to take a shipped label set name (see uniformerv2.zoo.load_labels) or a file.
The target format follows DST unless --to is given: a directory (no suffix) is ours, .pyth is
official, .pth is MMAction2.
"""

_SUFFIX_FORMATS = {"": "ours", ".pyth": "official", ".pth": "mmaction2"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``convert`` sub-command."""
    parser = subparsers.add_parser(
        "convert",
        help="convert checkpoints between official, MMAction2 and our format",
        description="Load SRC strictly (any supported format, or a zoo name) and write it as DST, optionally "
        "re-ordering the classifier to another label order.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", help="checkpoint file, model directory, zoo name or Hub id")
    parser.add_argument("dst", help="output: a directory (ours), .pyth (official) or .pth (MMAction2)")
    parser.add_argument(
        "--to", choices=("ours", "official", "mmaction2"), default=None, help="output format (default: from DST)"
    )
    parser.add_argument("--labels-from", default=None, help="label order of SRC's head: label set name or file")
    parser.add_argument("--labels-to", default=None, help="label order wanted in DST: label set name or file")
    parser.set_defaults(func=run)


def read_labels(spec: str, expected: int | None = None) -> list[str]:
    """A label list from a file path or a shipped label set name; checks the count when given."""
    from uniformerv2.zoo import load_labels, read_label_file

    if Path(spec).is_file():
        return read_label_file(spec, expected=expected)
    labels = load_labels(spec)
    if expected is not None and len(labels) != expected:
        raise ValueError(f"label set {spec!r} has {len(labels)} names, but the head has {expected} classes")
    return labels


def target_format(dst: str, to: str | None) -> str:
    """The output format: ``--to``, else from DST's suffix."""
    if to is not None:
        return to
    suffix = Path(dst).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise ValueError(f"{dst}: cannot tell the format from the suffix {suffix!r}; pass --to ours|official|mmaction2")
    return _SUFFIX_FORMATS[suffix]


def relabel(model: Any, labels: list[str], target: list[str]) -> None:
    """Re-order (or select) the classifier rows of ``model`` in place so row k is ``target[k]``."""
    order = label_permutation(labels, target)
    state = permute_head(model.state_dict(), order)
    if len(order) != model.config.num_classes:
        model.reset_classifier(len(order))
    model.load_state_dict(state)
    model.pretrained_cfg["labels"] = list(target)


def write(model: Any, dst: str, fmt: str) -> None:
    """Write ``model`` as our directory, a flat official state dict, or ``{"state_dict": ...}`` (MMAction2)."""
    if fmt == "ours":
        save_pretrained(model, dst)
        return
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    converted = from_ours(state, "official" if fmt == "official" else "mmaction2")
    atomic_torch_save(converted if fmt == "official" else {"state_dict": converted}, Path(dst))


@guarded
def run(args: argparse.Namespace) -> int:
    """Convert SRC to DST; prints what was written."""
    from uniformerv2.api import load_model

    if not args.dst.strip():
        raise OutputError("DST is empty: name the output file or directory")
    fmt = target_format(args.dst, args.to)
    if fmt == "ours":
        prepare_outputs({}, {"DST": args.dst})
    else:
        prepare_outputs({"DST": args.dst})
    model = load_model(args.src, device="cpu")
    num_classes = model.config.num_classes
    labels = read_labels(args.labels_from, num_classes) if args.labels_from else model.pretrained_cfg["labels"]
    model.pretrained_cfg["labels"] = labels
    if args.labels_to:
        relabel(model, labels, read_labels(args.labels_to))
    write(model, args.dst, fmt)
    print(f"{args.src} -> {args.dst} ({fmt}, {model.config.num_classes} classes)")
    return 0
