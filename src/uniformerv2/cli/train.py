"""``uniformerv2 train``: fine-tune on annotation lists; a thin layer over :func:`uniformerv2.train.fit`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

_EXAMPLE = """examples:
  uniformerv2 train --list-presets
  uniformerv2 train --preset k400_b16_f8x224_from_k710 data.train_list=train.csv data.val_list=val.csv \\
      data.root=/data/k400 output_dir=runs/k400_b16 --print-config
  uniformerv2 train --config configs/train/ucf101_b16_from_k710.yaml optim.base_lr=5e-6
  uniformerv2 train --preset debug_tiny data.train_list=tiny.csv device=cpu      # CPU smoke test

  # one node, 8 GPUs (optim.global_batch_size is split over the processes)
  torchrun --standalone --nproc_per_node 8 -m uniformerv2 train --config run.yaml
  # two nodes: run on each node with --node_rank 0 / 1; node0 is reachable from both
  torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv_backend c10d \\
      --rdzv_endpoint node0:29500 --rdzv_id run1 -m uniformerv2 train --config run.yaml

Overrides are section.field=value (sections: model, data, aug, optim, eval; top level:
output_dir, seed, resume, device, progress). An interrupted run continues from
output_dir/last.pt when restarted with the same command (resume=auto, the default)."""


def add_parser(subparsers: Any) -> None:
    """Register the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a model on video annotation lists",
        description="Fine-tune UniFormerV2 with the official recipe (AdamW, warmup + half-cosine, AMP, "
        "grad clip 20, validation every epoch), writing last.pt, best.pt, metrics.jsonl, curves.png "
        "and the best model in the release format.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config", metavar="FILE", help="YAML or JSON config (may start from a preset with 'preset: NAME')"
    )
    source.add_argument("--preset", metavar="NAME", help="a named official recipe (see --list-presets)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.base_lr=2e-6")
    parser.add_argument("--list-presets", action="store_true", help="print the presets with their recipes and exit")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    parser.set_defaults(func=run)


def _list_presets() -> int:
    from uniformerv2.train.presets import PRESETS

    for name, fn in PRESETS.items():
        print(f"{name:36s} {(fn.__doc__ or '').strip().splitlines()[0]}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Resolve the config and call :func:`uniformerv2.train.fit`.

    Exit status: 0 on success; 2 for a bad config, option or annotation list; 1 when training
    stopped on a video, a non-finite loss, a dead loader worker or a full disk; 130 on Ctrl-C
    (the message says where the same command resumes).
    """
    from uniformerv2.errors import CheckpointError, DeviceError, InputError, UniFormerV2Error, printable
    from uniformerv2.runtime import dist_env
    from uniformerv2.train.config import TrainConfig, apply_overrides, load_config
    from uniformerv2.train.presets import get_preset

    if args.list_presets:
        return _list_presets()
    try:
        base = load_config(args.config) if args.config else get_preset(args.preset) if args.preset else TrainConfig()
        config = apply_overrides(base, args.overrides)
    except (KeyError, ValueError, OSError, ImportError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_json())
        return 0
    rank = dist_env()[0]
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s"
    )
    from uniformerv2.train.data import AnnotationError
    from uniformerv2.train.trainer import TrainingInterrupted, fit

    try:
        fit(config)
    except KeyboardInterrupt as exc:
        where = f"; {exc}" if isinstance(exc, TrainingInterrupted) else ""
        print(f"interrupted{where}", file=sys.stderr)
        return 130
    except (AnnotationError, InputError, CheckpointError, DeviceError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UniFormerV2Error as exc:  # a video, the loss, a worker, the disk: one line each
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an output directory or list path that the system refuses
        print(f"error: {printable(str(exc.filename or config.output_dir))}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
