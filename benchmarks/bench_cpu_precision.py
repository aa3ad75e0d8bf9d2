"""CPU fast paths side by side: fp32 (baseline), bf16 autocast, int8 (onnxruntime and torch.ao).

Usage:
    python benchmarks/bench_cpu_precision.py [--variant uniformerv2_b16] [--frames 8] [--repeats 5] [--clips 4]
        [--threads N] [--no-onnx]

One run, one set of random weights (seeded, every parameter perturbed), batch 1. Prints:

1. Forward time per path: median over ``--repeats`` rounds, the paths interleaved within each
   round so that load on a shared machine hits them alike; speed-up = fp32 median / path median.
   The baseline is our PyTorch fp32 forward (docs/benchmarks.md: within 1.05-1.08x of the
   official code on this machine).
2. Agreement with fp32 on ``--clips`` generated clips (uniformerv2.synthetic, one centre view):
   cosine of the pre-logit features (``forward_features``), top-1 agreement, max |Δprob|.
3. The bf16 ceiling: the speed-up of a bare (M, K) x (K, N) matmul at the shapes of the MLP, bf16
   vs fp32, i.e. what the matrix units offer before anything else costs.
4. A torch.profiler table of the bf16 forward, grouped into matmul, convolution, attention,
   LayerNorm, dtype casts and the rest, beside the same groups in fp32.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from uniformerv2 import create_model
from uniformerv2.export import OnnxModel, export_onnx, quantize_onnx
from uniformerv2.export.deploy import autocast_weights, use_matmul_attention
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.synthetic import sample_params, synthetic_clip
from uniformerv2.video import extract_views
from uniformerv2.video.decode import ArrayReader

GROUPS = {
    "matmul": ("addmm", "mm", "bmm", "linear", "matmul", "baddbmm"),
    "convolution": ("conv", "mkldnn_convolution"),
    "attention": ("scaled_dot_product", "_flash_attention", "softmax"),
    "layernorm": ("layer_norm",),
    "cast": ("aten::to", "_to_copy", "copy_", "clone", "contiguous"),
}


def random_model(name: str, seed: int = 0) -> torch.nn.Module:
    """The variant with 400 classes and every parameter perturbed, so that no added branch is zero."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=400).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return model


def quantize_torch(model: torch.nn.Module) -> torch.nn.Module:
    """PyTorch's dynamic int8 quantization of every ``nn.Linear`` (``torch.ao``, for comparison)."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def clips(count: int, frames: int, size: int) -> torch.Tensor:
    """(count, 3, T, S, S) centre views of synthetic videos, preprocessed as the official test does."""
    cfg = PreprocessConfig(num_frames=frames, crop_size=size, num_clips=1, num_crops=1)
    views = []
    for i in range(count):
        task = ("direction", "approach")[i % 2]
        video = synthetic_clip(sample_params(task, i, seed=1, frames=32, size=256), label=i % 2)
        views.append(extract_views(ArrayReader(video, name=f"clip{i}"), cfg)[0])
    return torch.stack(views)


def paths(model: torch.nn.Module, onnx_dir: Path, frames: int, threads: int, onnx: bool) -> dict[str, Callable]:
    """name -> (B, 3, T, S, S) -> (features, logits) for every path (the onnxruntime ones if ``onnx``)."""

    def torch_path(net: torch.nn.Module, amp: bool) -> Callable:
        def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=amp):
                features = net.forward_features(x)
                return features.float(), net.forward_head(features).float()

        return run

    def ort_path(net: OnnxModel) -> Callable:
        def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            (logits, features) = net.session.run(["logits", "features"], {"video": x.numpy()})
            return torch.from_numpy(features), torch.from_numpy(logits)

        return run

    runs = {
        "fp32 torch (baseline)": torch_path(model, False),
        "bf16 torch autocast": torch_path(model, True),
        "bf16 torch autocast, bf16 weights": torch_path(autocast_weights(copy.deepcopy(model)), True),
        "bf16 autocast, bf16 weights, matmul attention (--precision bf16)": torch_path(
            use_matmul_attention(autocast_weights(copy.deepcopy(model))), True
        ),
        "int8 torch.ao dynamic": torch_path(quantize_torch(model), False),
    }
    if onnx:
        fp32_onnx = export_onnx(model, onnx_dir / "fp32.onnx", num_frames=frames, crop_size=224)
        int8_onnx = quantize_onnx(fp32_onnx, onnx_dir / "int8.onnx")
        runs["fp32 onnxruntime"] = ort_path(OnnxModel(fp32_onnx, num_threads=threads))
        runs["int8 onnxruntime dynamic"] = ort_path(OnnxModel(int8_onnx, num_threads=threads))
    return runs


def timings(runs: dict[str, Callable], x: torch.Tensor, repeats: int) -> dict[str, float]:
    for run in runs.values():  # warm-up: allocator, oneDNN primitives, onnxruntime arenas
        run(x)
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def agreement(runs: dict[str, Callable], views: torch.Tensor) -> dict[str, tuple[float, float, float]]:
    """name -> (min feature cosine, top-1 agreement, max |Δprob|) against the fp32 baseline."""
    outputs = {name: [run(v[None]) for v in views] for name, run in runs.items()}
    ref_f = torch.cat([f for f, _ in outputs["fp32 torch (baseline)"]])
    ref_p = torch.cat([lg for _, lg in outputs["fp32 torch (baseline)"]]).softmax(-1)
    result = {}
    for name, out in outputs.items():
        feats = torch.cat([f for f, _ in out])
        probs = torch.cat([lg for _, lg in out]).softmax(-1)
        cosine = F.cosine_similarity(feats, ref_f).min().item()
        top1 = (probs.argmax(-1) == ref_p.argmax(-1)).float().mean().item()
        result[name] = (cosine, top1, (probs - ref_p).abs().max().item())
    return result


def matmul_ceiling(model: torch.nn.Module, tokens: int, repeats: int) -> float:
    """fp32 / bf16 time of the first MLP's matmul at the forward's token count."""
    width = model.config.width
    a = torch.randn(tokens, width)
    b = torch.randn(width, 4 * width)

    def best(x: torch.Tensor, y: torch.Tensor) -> float:
        x @ y
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(5):
                x @ y
            samples.append((time.perf_counter() - start) / 5)
        return statistics.median(samples)

    return best(a, b) / best(a.bfloat16(), b.bfloat16())


def profile(run: Callable, x: torch.Tensor) -> dict[str, float]:
    """Self CPU milliseconds per group (GROUPS) of one forward."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    run(x)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        run(x)
    groups: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        group = next((g for g, keys in GROUPS.items() if any(k in event.key for k in keys)), "other")
        groups[group] += event.self_cpu_time_total / 1e3
    return dict(groups)


def top_ops(run: Callable, x: torch.Tensor, rows: int) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        run(x)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="uniformerv2_b16")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-onnx", action="store_true", help="only the PyTorch paths (no export)")
    parser.add_argument("--top-ops", type=int, default=15, help="rows of the bf16 profiler table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = random_model(args.variant)
    x = torch.randn(1, 3, args.frames, 224, 224, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        runs = paths(model, Path(tmp), args.frames, args.threads, onnx=not args.no_onnx)
        medians = timings(runs, x, args.repeats)
        agree = agreement(runs, clips(args.clips, args.frames, 224))
    base = medians["fp32 torch (baseline)"]
    print(f"\n{args.variant} 1x{args.frames}x224, {args.threads} threads, torch {torch.__version__}\n")
    print("| path | median s | clips/s | speed-up vs fp32 | min feature cosine | top-1 agree | max abs Δprob |")
    print("|---|---|---|---|---|---|---|")
    for name, seconds in medians.items():
        cosine, top1, dprob = agree[name]
        print(
            f"| {name} | {seconds:.3f} | {1 / seconds:.2f} | {base / seconds:.2f}x | {cosine:.5f} | "
            f"{top1:.2f} | {dprob:.4f} |"
        )
    tokens = args.frames * (1 + (224 // model.config.patch_size) ** 2)
    print(f"\nbf16 matmul ceiling ({tokens}x{model.config.width} @ {model.config.width}x{4 * model.config.width}): ")
    print(f"{matmul_ceiling(model, tokens, args.repeats):.2f}x fp32 speed")
    names = [
        "fp32 torch (baseline)",
        "bf16 torch autocast, bf16 weights",
        "bf16 autocast, bf16 weights, matmul attention (--precision bf16)",
    ]
    groups = [profile(runs[name], x) for name in names]
    print("\nSelf CPU ms per op group (torch.profiler, one forward each):\n")
    print("| group | fp32 | bf16 autocast, bf16 weights (SDPA) | bf16, matmul attention | share of the last |")
    print("|---|---|---|---|---|")
    total = sum(groups[-1].values())
    for group in [*GROUPS, "other"]:
        cells = " | ".join(f"{g.get(group, 0.0):.0f}" for g in groups)
        print(f"| {group} | {cells} | {100 * groups[-1].get(group, 0.0) / total:.0f}% |")
    print(f"| total | {' | '.join(f'{sum(g.values()):.0f}' for g in groups)} | |")
    print("\nbf16 forward (bf16 weights), top ops by self CPU time:\n")
    print(top_ops(runs[names[-1]], x, args.top_ops))


if __name__ == "__main__":
    main()
