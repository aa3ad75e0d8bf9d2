"""Does UniFormerV2 learn time? Train from scratch on videos whose classes differ only in temporal order.

Runs, all with ``uniformerv2.train.fit`` and the recipe of
``uniformerv2.synthetic.learns_time_config`` on one data set from ``make_synthetic``:

- ``uniformerv2`` — local MHRA + 2 global blocks, sequential fusion (the official layout);
- ``time_shuffled`` — the same training on the same videos with their frames in a random order;
- ``frame_average`` — a ViT without local MHRA and without global blocks: the head sees the mean over
  frames of the final class token;
- ``parallel``, ``hierarchical_kv``, ``hierarchical_q`` — the paper's other multi-stage fusions
  (per-stage queries), next to ``uniformerv2`` which is the sequential one.

Prints a table (best and last validation top-1, training time) and saves ``curves.png`` (validation
top-1 and training loss per epoch) and ``results.json`` in ``--out``.

    PYTHONPATH=src python benchmarks/learns_time.py --task direction --out /tmp/learns_time
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

from uniformerv2.atomic import atomic_savefig, atomic_write_json
from uniformerv2.synthetic import learns_time_config, make_synthetic
from uniformerv2.train import fit

#: run name -> (model, fusion, time order of the data)
RUNS: dict[str, tuple[str, str, str]] = {
    "uniformerv2": ("uniformerv2", "sequential", "natural"),
    "time_shuffled": ("uniformerv2", "sequential", "shuffled"),
    "frame_average": ("frame_average", "sequential", "natural"),
    "parallel": ("uniformerv2", "parallel", "natural"),
    "hierarchical_kv": ("uniformerv2", "hierarchical_kv", "natural"),
    "hierarchical_q": ("uniformerv2", "hierarchical_q", "natural"),
}


def _run(name: str, args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    model, fusion, order = RUNS[name]
    cfg = learns_time_config(
        data[order], args.out / "runs" / name, model=model, fusion=fusion, epochs=args.epochs, seed=args.seed
    )
    start = time.perf_counter()
    result = fit(cfg)
    seconds = time.perf_counter() - start
    history = result.history
    print(
        f"{name}: best val top-1 {result.best_top1:.1f} % (epoch {result.best_epoch + 1}), {seconds:.0f} s", flush=True
    )
    return {
        "run": name,
        "model": model,
        "fusion": fusion,
        "time_order": order,
        "best_val_top1": result.best_top1,
        "last_val_top1": history[-1]["val_top1"],
        "seconds": seconds,
        "val_top1": [r["val_top1"] for r in history],
        "train_loss": [r["train_loss"] for r in history],
    }


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax_acc, ax_loss = fig.subplots(1, 2)
    for row in rows:
        epochs = range(1, len(row["val_top1"]) + 1)
        style = "--" if row["run"] in ("time_shuffled", "frame_average") else "-"
        ax_acc.plot(epochs, row["val_top1"], style, marker="o", label=row["run"])
        ax_loss.plot(epochs, row["train_loss"], style, marker="o", label=row["run"])
    ax_acc.axhline(50, color="grey", lw=0.8)
    ax_acc.set(xlabel="epoch", ylabel="validation top-1 (%)", ylim=(0, 102), title=title)
    ax_loss.set(xlabel="epoch", ylabel="training cross-entropy", title="training loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("direction", "approach"), default="direction")
    parser.add_argument("--out", type=Path, default=Path("/tmp/learns_time"))
    parser.add_argument("--num-videos", type=int, default=600, help="train + val videos (a quarter is val)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    start = time.perf_counter()
    orders = {RUNS[name][2] for name in args.runs}
    data = {
        order: make_synthetic(
            args.out / f"data_{args.task}_{order}",
            args.num_videos,
            args.task,
            frames=8,
            size=32,
            seed=args.seed,
            time_order=order,
            progress=sys.stderr.isatty(),
        )
        for order in sorted(orders)
    }
    print(f"data: {args.num_videos} videos per set, {time.perf_counter() - start:.0f} s", flush=True)
    rows = [_run(name, args, data) for name in args.runs]
    print(f"\ntask {args.task}, {args.num_videos} videos, {args.epochs} epochs, seed {args.seed}\n")
    print("| run | model | fusion | frames | best val top-1 (%) | last val top-1 (%) | train time (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['model']} | {r['fusion']} | {r['time_order']} | {r['best_val_top1']:.1f} "
            f"| {r['last_val_top1']:.1f} | {r['seconds']:.0f} |"
        )
    atomic_write_json(
        args.out / "results.json", {"task": args.task, "args": vars(args) | {"out": str(args.out)}, "rows": rows}
    )
    _plot(rows, args.out / "curves.png", f"{args.task}: validation top-1")
    print(f"\nwrote {args.out / 'curves.png'} and {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
