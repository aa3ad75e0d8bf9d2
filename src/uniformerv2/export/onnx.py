"""Export a UniFormerV2 model to a self-describing ONNX file.

The graph takes ``video`` (B, 3, T, S, S), normalised exactly as the checkpoint's
:class:`~uniformerv2.preprocess.PreprocessConfig` says, and returns ``logits`` (B, num_classes)
and ``features`` (B, n), the fused video representation before the head's LayerNorm
(:meth:`UniFormerV2.forward_features`). The class names, the preprocessing and the architecture
travel in the file's ``metadata_props`` as JSON, so a consumer needs nothing but the file.

Exports go through ``torch.onnx.export(dynamo=True)`` (torch.export), opset 18 or newer.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from uniformerv2.atomic import atomic_write
from uniformerv2.errors import UniFormerV2Error
from uniformerv2.preprocess import PreprocessConfig

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "MIN_OPSET",
    "ExportError",
    "export_onnx",
    "quantize_onnx",
    "read_onnx_metadata",
    "parse_metadata",
]

_logger = logging.getLogger(__name__)

INPUT_NAME = "video"
OUTPUT_NAMES = ("logits", "features")
MIN_OPSET = 18
#: Version of the metadata layout written by :func:`export_onnx`.
METADATA_VERSION = 1

Dtype = Literal["fp32", "fp16", "int8"]
_DTYPES = ("fp32", "fp16", "int8")


class ExportError(UniFormerV2Error):
    """A model cannot be exported, or an exported file cannot be used, as asked."""


def require(module: str) -> Any:
    """Import an optional dependency of the ``[onnx]`` extra, or fail in one line saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(f"{module} is not installed; pip install 'uniformerv2[onnx]'") from exc


class _LogitsAndFeatures(nn.Module):
    """The exported graph: video -> (logits, features)."""

    model: Any

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(video)
        return self.model.forward_head(features), features


def _as_model(model: Any) -> Any:
    if isinstance(model, nn.Module):
        return model
    from uniformerv2.api import load_model

    return load_model(model, device="cpu")


def _prepare(model: Any, dtype: Dtype) -> nn.Module:
    """A CPU copy in eval mode; for fp16 the backbone LayerNorms stay fp32, as the official
    fp16 autocast keeps them (``LayerNorm`` upcasts its input, so its weights must be fp32)."""
    from uniformerv2.model.layers import LayerNorm

    net = copy.deepcopy(model).cpu().float().eval()
    if dtype == "fp16":
        net.half()
        for module in net.modules():
            if isinstance(module, LayerNorm):
                module.float()
    return net


def _check_request(model: Any, frames: int, size: int, dtype: str, opset: int, dynamic_frames: bool) -> None:
    cfg = model.config
    if dtype not in _DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: LayerNormalization and the exporter need opset >= {MIN_OPSET}")
    if frames < 1:
        raise ExportError(f"--frames must be at least 1, got {frames}")
    if cfg.temporal_downsample and frames % 2:
        raise ExportError(f"this model downsamples time by 2 and needs an even --frames, got {frames}")
    if dynamic_frames and frames < 2 * (1 + cfg.temporal_downsample):
        raise ExportError(f"a dynamic frame count is traced from --frames >= {2 * (1 + cfg.temporal_downsample)}")
    if size < cfg.patch_size:
        raise ExportError(f"--size {size} is smaller than one {cfg.patch_size}x{cfg.patch_size} patch")


def _dynamic_shapes(model: Any, dynamic_batch: bool, dynamic_frames: bool) -> tuple[dict[int, Any]] | None:
    from torch.export import Dim

    dims: dict[int, Any] = {}
    if dynamic_batch:
        dims[0] = Dim("batch", min=1, max=4096)
    if dynamic_frames:
        # Temporal downsampling halves T with a stride-2 conv: an even T = 2 * k exports exactly.
        dims[2] = (
            2 * Dim("half_frames", min=1, max=512) if model.config.temporal_downsample else Dim("frames", max=1024)
        )
    return (dims,) if dims else None


def _metadata(model: Any, preprocess: PreprocessConfig, dtype: str, dynamic: dict[str, bool]) -> dict[str, str]:
    meta = getattr(model, "pretrained_cfg", {}) or {}
    labels = meta.get("labels") or [f"LABEL_{i}" for i in range(model.config.num_classes)]
    info = {
        "version": METADATA_VERSION,
        "source": str(meta.get("source", "")),
        "dtype": dtype,
        "input": INPUT_NAME,
        "outputs": list(OUTPUT_NAMES),
        "config": model.config.to_dict(),
        **{f"dynamic_{k}": v for k, v in dynamic.items()},
    }
    return {
        "labels": json.dumps(list(labels)),
        "preprocess": json.dumps(preprocess.to_dict()),
        "uniformerv2": json.dumps(info),
    }


def export_onnx(
    model: Any,
    path: str | os.PathLike[str],
    *,
    num_frames: int | None = None,
    crop_size: int | None = None,
    dynamic_batch: bool = True,
    dynamic_frames: bool = False,
    dtype: Dtype = "fp32",
    opset: int = MIN_OPSET,
) -> Path:
    """Export ``model`` to an ONNX file carrying its labels and preprocessing.

    Args:
        model: a loaded model, or anything :func:`uniformerv2.load_model` accepts (zoo name,
            checkpoint file, model directory).
        path: the ``.onnx`` file to write (atomically).
        num_frames: frames per clip T; the checkpoint's own (``pretrained_cfg["preprocess"]``) when None.
        crop_size: input side S; the checkpoint's own when None.
        dynamic_batch: leave the batch dimension free (otherwise it is fixed at 1).
        dynamic_frames: leave T free as well (``num_frames`` stays the preprocessing default);
            models that downsample time accept even T only.
        dtype: "fp32"; "fp16" (weights and activations in half precision, backbone LayerNorms in
            fp32 as under the official fp16 autocast: for GPU runtimes such as TensorRT); or
            "int8" (the fp32 graph with its MatMul weights quantized by
            :func:`quantize_onnx`, activations quantized at run time: a CPU speed/accuracy trade).
        opset: ONNX opset, at least 18.

    Returns:
        ``path``.

    Raises:
        ExportError: the request cannot be exported (one line saying why), or the ``[onnx]``
            extra is missing.
    """
    require("onnx")
    require("onnxscript")
    net = _as_model(model)
    preprocess = net.pretrained_cfg.get("preprocess") or PreprocessConfig()
    preprocess = dataclasses.replace(
        preprocess, num_frames=num_frames or preprocess.num_frames, crop_size=crop_size or preprocess.crop_size
    )
    frames, size = preprocess.num_frames, preprocess.crop_size
    name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else net.pretrained_cfg.get("source", "model")
    try:
        _check_request(net, frames, size, dtype, opset, dynamic_frames)
    except ExportError as exc:
        raise ExportError(f"{name}: {exc}") from None
    graph_dtype: Dtype = "fp16" if dtype == "fp16" else "fp32"
    wrapper = _LogitsAndFeatures(_prepare(net, graph_dtype)).eval()
    # Batch 2: torch.export specialises a dimension traced at size 1.
    example = torch.zeros(2 if dynamic_batch else 1, 3, frames, size, size)
    example = example.half() if graph_dtype == "fp16" else example
    try:
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=_dynamic_shapes(net, dynamic_batch, dynamic_frames),
            verbose=False,
        )
    except Exception as exc:  # the exporter's own errors are many pages; keep its first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{name}: torch.onnx could not export the model: {first}") from exc
    if program is None:  # torch.onnx.export returns the program when no file is given
        raise ExportError(f"{name}: torch.onnx returned no program")
    dynamic = {"batch": dynamic_batch, "frames": dynamic_frames}
    program.model.metadata_props.update(_metadata(net, preprocess, dtype, dynamic))
    if dtype == "int8":
        with tempfile.TemporaryDirectory(dir=Path(path).parent) as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            program.save(str(fp32))
            return quantize_onnx(fp32, path)
    return atomic_write(path, lambda tmp: program.save(tmp))


def quantize_onnx(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Dynamic int8 quantization of an exported fp32 file (onnxruntime ``quantize_dynamic``).

    MatMul and Gemm weights become int8 (per output channel); activations are quantized to
    uint8 per tensor at run time. Convolutions (the patch stem, local MHRA and DPE) and every
    LayerNorm stay fp32. The metadata is carried over, with ``dtype`` set to ``"int8"``.
    """
    onnx = require("onnx")
    quant = require("onnxruntime.quantization")
    props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    if "uniformerv2" in props:
        info = json.loads(props["uniformerv2"])
        if info.get("dtype") != "fp32":
            raise ExportError(f"{source}: only an fp32 export can be quantized, this one is {info.get('dtype')}")
        props["uniformerv2"] = json.dumps({**info, "dtype": "int8"})

    def write(tmp: str) -> None:
        with _quiet_root_logger():  # its advice to run shape pre-processing first does not apply here
            quant.quantize_dynamic(
                str(source),
                tmp,
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                weight_type=quant.QuantType.QInt8,
            )
        proto = onnx.load(tmp)
        del proto.metadata_props[:]
        for key, value in props.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, tmp)

    return atomic_write(path, write)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def parse_metadata(props: dict[str, str], source: str) -> dict[str, Any]:
    """``{"labels", "preprocess", "info"}`` from an export's metadata_props.

    Raises:
        ExportError: the file was not written by :func:`export_onnx`.
    """
    missing = [k for k in ("labels", "preprocess", "uniformerv2") if k not in props]
    if missing:
        raise ExportError(
            f"{source}: no {', '.join(missing)} in the ONNX metadata; export the model with `uniformerv2 export`"
        )
    try:
        labels = json.loads(props["labels"])
        preprocess = PreprocessConfig.from_dict(json.loads(props["preprocess"]))
        info = json.loads(props["uniformerv2"])
    except (ValueError, TypeError) as exc:
        raise ExportError(f"{source}: unreadable uniformerv2 metadata ({exc})") from exc
    return {"labels": list(labels), "preprocess": preprocess, "info": info}


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The labels, :class:`PreprocessConfig` and export info stored in an exported file."""
    onnx = require("onnx")
    if not Path(path).is_file():
        raise ExportError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for a file that is not ONNX
        raise ExportError(f"{path}: not an ONNX model ({type(exc).__name__})") from exc
    return parse_metadata({p.key: p.value for p in proto.metadata_props}, str(path))
