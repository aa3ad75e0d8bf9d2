"""`uniformerv2 export`: write a model as a self-describing ONNX file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from uniformerv2.cli._jobs import guarded, load_cli_model, prepare_outputs
from uniformerv2.cli._options import positive_int

_EXAMPLE = """examples:
  uniformerv2 export uniformerv2-b16-k400-k710-8x224 b16_k400.onnx
  uniformerv2 export k400_b16.pyth b16.onnx --frames 16 --no-dynamic-batch
  uniformerv2 export my_model_dir/ model_fp16.onnx --dtype fp16      # for TensorRT / CUDA
  uniformerv2 export my_model_dir/ model_int8.onnx --dtype int8      # CPU, dynamic quantization
  uniformerv2 predict clip.mp4 --runtime onnxruntime --model b16_k400.onnx
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX",
        description="Export a model to ONNX (opset >= 18): input `video` (B, 3, T, S, S) normalised as the "
        "checkpoint expects, outputs `logits` and `features`; class names and preprocessing are stored in the "
        "file's metadata.",
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="zoo name, checkpoint file (.pyth, .pth, .safetensors) or model directory")
    parser.add_argument("output", help="the .onnx file to write")
    parser.add_argument(
        "--frames", type=positive_int, default=None, help="frames per clip T (default: the checkpoint's)"
    )
    parser.add_argument("--size", type=positive_int, default=None, help="input side S (default: the checkpoint's crop)")
    parser.add_argument(
        "--dynamic-batch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="leave the batch dimension free (default; --no-dynamic-batch fixes it at 1)",
    )
    parser.add_argument(
        "--dynamic-frames", action="store_true", help="leave the frame count free as well (even T for SSv2 models)"
    )
    parser.add_argument(
        "--dtype",
        choices=("fp32", "fp16", "int8"),
        default="fp32",
        help="fp32 (default, exact); fp16 for GPU runtimes; int8: MatMul weights quantized for CPU",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 18, default 18)")
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    """Export and print where the file went."""
    from uniformerv2.export import export_onnx, read_onnx_metadata

    prepare_outputs({"OUTPUT": args.output})
    path = export_onnx(
        args.model,
        args.output,
        num_frames=args.frames,
        crop_size=args.size,
        dynamic_batch=args.dynamic_batch,
        dynamic_frames=args.dynamic_frames,
        dtype=args.dtype,
        opset=args.opset,
    )
    meta = read_onnx_metadata(path)
    cfg = meta["preprocess"]
    batch = "B" if args.dynamic_batch else "1"
    frames = "T" if args.dynamic_frames else str(cfg.num_frames)
    print(
        f"{path}: {args.dtype}, input video {batch}x3x{frames}x{cfg.crop_size}x{cfg.crop_size}, "
        f"{len(meta['labels'])} classes",
        file=sys.stdout,
    )
    return 0


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """--runtime / --precision of the commands that can run an export or a fast CPU path."""
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="torch (default) or onnxruntime, which runs an exported --model FILE.onnx without PyTorch weights",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "int8"),
        default="fp32",
        help="fp32 (default, exact); bf16: autocast (torch runtime); int8: dynamic quantization (onnxruntime, CPU)",
    )


def load_runtime_model(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The model of --model/--checkpoint for --runtime/--precision, and the autocast dtype to use."""
    from uniformerv2.export.deploy import prepare_model
    from uniformerv2.zoo import read_label_file

    source = args.checkpoint or args.model
    onnx_source = args.runtime == "onnxruntime" or str(source or "").endswith(".onnx")
    if not onnx_source:
        if args.precision == "int8":  # refuse before loading the weights
            prepare_model(source or "the model", precision="int8")
        return prepare_model(load_cli_model(args), precision=args.precision, amp_dtype=args.amp, inplace=True)
    if not source:
        raise ValueError("--runtime onnxruntime needs --model FILE.onnx (see uniformerv2 export)")
    model: Any
    model, amp = prepare_model(
        source, runtime=args.runtime, precision=args.precision, device=args.device, amp_dtype=args.amp
    )
    if args.labels:
        model.pretrained_cfg["labels"] = read_label_file(args.labels, expected=model.config.num_classes)
    return model, amp
