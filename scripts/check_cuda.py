"""GPU checks that CPU CI cannot run: golden parity on CUDA, CPU/CUDA agreement at full size,
bf16 autocast agreement, GPU augmentation, and predict() on CUDA.

Usage: python scripts/check_cuda.py  (prints one line per check and exits 1 if any failed)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import uniformerv2
from uniformerv2 import UniFormerV2, UniFormerV2Config, load_weights

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "assets" / "golden"
failures: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def golden(device: torch.device) -> None:
    for name, kwargs in json.loads((GOLDEN / "cases.json").read_text()).items():
        model = UniFormerV2(UniFormerV2Config.from_official_kwargs(kwargs)).eval()
        load_weights(model, GOLDEN / f"{name}.pyth")
        io = torch.load(GOLDEN / f"{name}.io.pt", weights_only=True)
        with torch.no_grad():
            diff = (model.to(device).forward_features(io["input"].to(device)).cpu() - io["features"]).abs().max().item()
        check(f"golden {name} on {device}", diff < 1e-4, f"max |features - official| = {diff:.2e}")


def full_size(device: torch.device) -> None:
    for variant, frames in (("uniformerv2_b16_ssv2", 16), ("uniformerv2_l14", 8)):
        torch.manual_seed(0)
        model = uniformerv2.create_model(variant).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
        x = torch.randn(2, 3, frames, 224, 224)
        with torch.no_grad():
            cpu = model(x)
            gpu_model = model.to(device)
            gpu = gpu_model(x.to(device)).float().cpu()
            with torch.autocast("cuda", torch.bfloat16):
                bf16 = gpu_model(x.to(device)).float().cpu()
        diff = (cpu - gpu).abs().max().item()
        check(
            f"{variant} CPU vs CUDA fp32",
            diff < 1e-3,
            f"max |diff| = {diff:.2e} over logits of scale {cpu.abs().max():.2f}",
        )
        cos = torch.nn.functional.cosine_similarity(bf16, gpu).min().item()
        check(
            f"{variant} bf16 autocast vs fp32",
            cos > 0.99,
            f"min cosine = {cos:.5f}, top-1 agree = {(bf16.argmax(-1) == gpu.argmax(-1)).float().mean().item():.2f}",
        )


def augmentation(device: torch.device) -> None:
    from uniformerv2.preprocess import PreprocessConfig
    from uniformerv2.video import TrainTransform

    frames = torch.randint(0, 256, (8, 180, 320, 3), dtype=torch.uint8, device=device)
    out = TrainTransform(PreprocessConfig(num_frames=8), num_samples=2)(frames)
    check(
        "TrainTransform on CUDA",
        out.device.type == "cuda" and out.shape == (2, 3, 8, 224, 224),
        f"{tuple(out.shape)} on {out.device}",
    )


def predict_on_cuda(device: torch.device) -> None:
    sample = ROOT / "assets" / "sample.mp4"
    if not sample.exists() or not hasattr(uniformerv2, "predict"):
        check("predict on CUDA", False, "assets/sample.mp4 or uniformerv2.predict missing")
        return
    torch.manual_seed(0)
    model = uniformerv2.create_model("uniformerv2_b16", num_classes=5).eval()
    model.pretrained_cfg = {"labels": list("abcde"), "preprocess": uniformerv2.PreprocessConfig(num_frames=8)}
    cpu = uniformerv2.predict(str(sample), model=model, top_k=5, device="cpu")
    gpu = uniformerv2.predict(str(sample), model=model, top_k=5, device=device)
    diff = max(
        abs(a["score"] - b["score"])
        for a, b in zip(sorted(cpu, key=lambda r: r["label"]), sorted(gpu, key=lambda r: r["label"]), strict=False)
    )
    check("predict CPU vs CUDA", diff < 1e-3, f"max score diff {diff:.2e}")


def main() -> int:
    device = torch.device("cuda")
    # cuDNN may use TF32 for convolutions by default, which moves SSv2-style outputs by ~1e-3.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__}")
    for step in (golden, full_size, augmentation, predict_on_cuda):
        try:
            step(device)
        except Exception as exc:  # report and go on to the next check
            check(step.__name__, False, f"{type(exc).__name__}: {exc}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
