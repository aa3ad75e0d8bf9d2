"""Model throughput and memory: clips/s of a forward pass per variant, precision and device.

Usage:
    python benchmarks/bench_model.py --device cuda --variants uniformerv2_b16 uniformerv2_l14 --batch 8
    python benchmarks/bench_model.py --device cpu --variants uniformerv2_b16 --batch 1 --repeats 3

Prints a markdown table: median seconds per batch, clips/s, the bf16/fp32 speed ratio measured in
the same run, and peak GPU memory; with --train also one training step with and without gradient
checkpointing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from uniformerv2 import create_model

FRAMES = {"uniformerv2_b16_ssv2": 16, "uniformerv2_l14_ssv2": 16}
SIZE = {"uniformerv2_l14_336": 336, "uniformerv2_l14_336_frozen": 336}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def bench_inference(name: str, device: torch.device, batch: int, repeats: int) -> list[dict]:
    model = create_model(name).to(device).eval()
    frames, size = FRAMES.get(name, 8), SIZE.get(name, 224)
    x = torch.randn(batch, 3, frames, size, size, device=device)
    rows = []
    for precision in ("fp32", "bf16"):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

        def step(precision: str = precision) -> None:
            with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                model(x)

        seconds = _time(step, device, repeats)
        rows.append(
            dict(
                model=name,
                input=f"{batch}x{frames}x{size}",
                mode=f"infer {precision}",
                seconds=seconds,
                clips_per_s=batch / seconds,
                peak_gib=_peak_gib(device),
            )
        )
    return rows


def bench_train(name: str, device: torch.device, batch: int, repeats: int) -> list[dict]:
    model = create_model(name).to(device).train()
    frames, size = FRAMES.get(name, 8), SIZE.get(name, 224)
    x = torch.randn(batch, 3, frames, size, size, device=device)
    rows = []
    for ckpt in (False, True):
        model.set_grad_checkpointing(ckpt)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

        def step() -> None:
            with torch.autocast(device.type, torch.bfloat16):
                model(x).float().logsumexp(-1).mean().backward()
            model.zero_grad(set_to_none=True)

        seconds = _time(step, device, repeats, warmup=1)
        rows.append(
            dict(
                model=name,
                input=f"{batch}x{frames}x{size}",
                mode=f"train bf16{' ckpt' if ckpt else ''}",
                seconds=seconds,
                clips_per_s=batch / seconds,
                peak_gib=_peak_gib(device),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", nargs="+", default=["uniformerv2_b16"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train", action="store_true", help="also time a training step with/without checkpointing")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device: {name}, torch {torch.__version__}\n")
    print("| model | input B×T×S | mode | median s/batch | clips/s | vs fp32 | peak GiB |")
    print("|---|---|---|---|---|---|---|")
    for variant in args.variants:
        rows = bench_inference(variant, device, args.batch, args.repeats)
        if args.train:
            rows += bench_train(variant, device, max(1, args.batch // 2), max(3, args.repeats // 2))
        base = rows[0]["seconds"]
        for r in rows:
            ratio = f"{base / r['seconds']:.2f}x" if r["mode"].startswith("infer") else ""
            print(
                f"| {r['model']} | {r['input']} | {r['mode']} | {r['seconds']:.4f} | {r['clips_per_s']:.1f} | "
                f"{ratio} | {r['peak_gib']:.2f} |"
            )


if __name__ == "__main__":
    main()
