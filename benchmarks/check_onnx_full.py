"""onnxruntime parity of full-size exports: B/16 8x224 (Kinetics layout) and B/16 16x224 (SSv2 layout).

Usage:
    python benchmarks/check_onnx_full.py [--variants uniformerv2_b16 uniformerv2_b16_ssv2] [--out DIR]

Random weights (seeded; every added UniFormerV2 parameter perturbed so no branch is zero),
exported with a dynamic batch, compared with the PyTorch fp32 forward at batch 1 and 3. Prints a
markdown table: export seconds, file size, max |logit difference|, max |feature difference|, and
onnxruntime vs PyTorch median forward seconds at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from uniformerv2 import create_model
from uniformerv2.export import export_onnx, load_onnx

FRAMES = {"uniformerv2_b16": 8, "uniformerv2_b16_ssv2": 16}


def _median_seconds(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check(name: str, out_dir: Path) -> dict:
    torch.manual_seed(0)
    model = create_model(name, num_classes=400).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    frames = FRAMES[name]
    start = time.perf_counter()
    path = export_onnx(model, out_dir / f"{name}.onnx", num_frames=frames, crop_size=224)
    export_s = time.perf_counter() - start
    runtime = load_onnx(path)
    row = {"model": name, "input": f"{frames}x224", "export_s": export_s, "MB": path.stat().st_size / 2**20}
    for batch in (1, 3):
        x = torch.randn(batch, 3, frames, 224, 224, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            features = model.forward_features(x)
            logits = model.forward_head(features)
        row[f"logits_b{batch}"] = (runtime(x) - logits).abs().max().item()
        row[f"features_b{batch}"] = (runtime.forward_features(x) - features).abs().max().item()
    x = torch.randn(1, 3, frames, 224, 224)
    with torch.no_grad():
        row["torch_s"] = _median_seconds(lambda: model(x))
    row["ort_s"] = _median_seconds(lambda: runtime(x))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(FRAMES))
    parser.add_argument("--out", type=Path, default=None, help="keep the exports here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = [check(name, out) for name in args.variants]
    print("| model | T×S | export s | MB | max Δlogit b1 | b3 | max Δfeature b1 | b3 | torch s (b1) | ort s (b1) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['input']} | {r['export_s']:.0f} | {r['MB']:.0f} | {r['logits_b1']:.2e} | "
            f"{r['logits_b3']:.2e} | {r['features_b1']:.2e} | {r['features_b3']:.2e} | {r['torch_s']:.2f} | "
            f"{r['ort_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
