"""Pick a runtime and a precision for inference: PyTorch or onnxruntime; fp32, bf16 or int8.

- ``fp32``: the exact model (default).
- ``bf16``: PyTorch autocast to bfloat16 (matrix multiplies and convolutions in bf16, the
  backbone LayerNorms in fp32), with the weights of those matrix multiplies and convolutions
  stored in bf16 beforehand (:func:`autocast_weights`) so that autocast does not cast them again
  at every forward, and on the CPU attention as explicit bf16 matmuls (:func:`use_matmul_attention`);
  PyTorch runtime only.
- ``int8``: onnxruntime dynamic quantization of an export (:func:`~uniformerv2.export.quantize_onnx`):
  MatMul/Gemm weights int8, activations quantized per batch at run time. PyTorch's own dynamic
  quantization (``torch.ao``, deprecated) is slower here, misses the fused q/k/v projection (a
  functional matmul) and stores packed weights that ``state_dict`` tools cannot read, so int8
  runs with onnxruntime only.

See docs/deployment.md for the measured speed and agreement of each.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from uniformerv2.export.onnx import ExportError, quantize_onnx, read_onnx_metadata
from uniformerv2.export.session import OnnxModel

__all__ = ["Runtime", "Precision", "autocast_weights", "use_matmul_attention", "prepare_model", "onnx_providers"]

Runtime = Literal["torch", "onnxruntime"]
Precision = Literal["fp32", "bf16", "int8"]


def autocast_weights(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Store the weights autocast would cast to ``dtype`` at every call in ``dtype`` already (in place).

    These are the parameters of ``nn.Linear``, the convolutions and the packed q/k/v projection
    of :class:`~uniformerv2.model.layers.Attention`: autocast runs those ops in ``dtype`` and casts
    every floating argument, so under autocast the outputs are unchanged while the per-forward
    casts of ~all the weights disappear. Everything else (LayerNorms, embeddings, the fusion
    query and balance) keeps its dtype. Outside autocast the model is no longer an fp32 model.
    """
    from uniformerv2.model.layers import Attention

    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, Attention)):
            module.to(dtype)
    return model


def use_matmul_attention(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every :class:`~uniformerv2.model.layers.Attention` to explicit matmuls (in place).

    softmax(q k^T / sqrt(d)) v as two matrix multiplies instead of the fused SDPA kernel: on the
    CPU under bf16 autocast the matmuls run in bf16 on the matrix units, while the SDPA kernel is
    barely faster in bf16 than in fp32 (docs/benchmarks.md). Same function, different rounding.
    """
    from uniformerv2.model.layers import Attention

    for module in model.modules():
        if isinstance(module, Attention):
            module.matmul_attention = enabled
    return model


def onnx_providers(device: str | torch.device | None) -> list[str]:
    """onnxruntime execution providers for ``device`` (None or cpu: CPU; cuda: CUDA, then CPU)."""
    import onnxruntime as ort

    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ExportError(f"this onnxruntime has no provider for device {device!r} (onnxruntime-gpu provides cuda)")


def _onnx_model(path: Path, precision: Precision, device: str | torch.device | None) -> OnnxModel:
    if precision == "bf16":
        raise ExportError(f"{path}: bf16 runs as PyTorch autocast; with onnxruntime choose fp32 or int8")
    providers = onnx_providers(device)
    if precision != "int8" or read_onnx_metadata(path)["info"].get("dtype") == "int8":
        return OnnxModel(path, providers=providers)
    with tempfile.TemporaryDirectory(prefix="uniformerv2-int8-") as tmp:  # the session keeps the graph in memory
        return OnnxModel(quantize_onnx(path, Path(tmp) / f"{path.stem}.int8.onnx"), providers=providers)


def prepare_model(
    source: Any,
    *,
    runtime: Runtime = "torch",
    precision: Precision = "fp32",
    device: str | torch.device | None = None,
    amp_dtype: str | None = None,
    inplace: bool = False,
) -> tuple[nn.Module, str | None]:
    """The model to run and the autocast dtype to run it under.

    Args:
        source: a loaded model or anything :func:`uniformerv2.load_model` accepts (PyTorch
            runtime), or an exported ``.onnx`` file (onnxruntime).
        runtime: "torch" or "onnxruntime".
        precision: "fp32" (exact), "bf16" or "int8" (see the module docstring).
        device: where to run; int8 runs on the CPU.
        amp_dtype: an autocast dtype asked for separately (``--amp``); must agree with ``precision``.
        inplace: for bf16, cast a given model's weights in place instead of in a copy.

    Returns:
        (model, autocast dtype for the inference helpers' ``amp_dtype``).

    Raises:
        ExportError: a combination that does not exist, naming the source and the cause.
    """
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "model"
    if precision not in ("fp32", "bf16", "int8") or runtime not in ("torch", "onnxruntime"):
        raise ExportError(f"{name}: unknown runtime/precision {runtime}/{precision}")
    if precision != "fp32" and amp_dtype not in (None, precision):
        raise ExportError(f"{name}: --precision {precision} and --amp {amp_dtype} disagree; give one of them")
    is_onnx = name.endswith(".onnx")
    if runtime == "onnxruntime":
        if not is_onnx:
            raise ExportError(f"{name}: --runtime onnxruntime needs an exported .onnx file (uniformerv2 export)")
        return _onnx_model(Path(name), precision, device), None
    if is_onnx:
        raise ExportError(f"{name}: an ONNX file runs with --runtime onnxruntime")
    from uniformerv2.inference.engine import resolve_model

    if precision == "int8":
        raise ExportError(
            f"{name}: int8 runs with onnxruntime; export it first (uniformerv2 export {name} m.onnx --dtype int8) "
            "and run --runtime onnxruntime --model m.onnx"
        )
    model, _ = resolve_model(source, device)
    if precision != "bf16":
        return model, amp_dtype
    if isinstance(source, nn.Module) and not inplace:
        model = copy.deepcopy(model)
    on_cpu = next(model.parameters()).device.type == "cpu"  # on GPUs the fused SDPA kernels are the fast path
    return use_matmul_attention(autocast_weights(model), enabled=on_cpu), "bf16"
