"""Run an exported ONNX file with onnxruntime behind the interface of a loaded model.

:class:`OnnxModel` has what the inference helpers use of a :class:`~uniformerv2.UniFormerV2`
(``config.num_classes``, ``pretrained_cfg`` with labels and preprocessing, ``forward`` giving
logits, ``forward_features``), all read from the file, so ``uniformerv2.predict(video, OnnxModel(path))``
runs the same decoding, sampling and multi-view averaging as with PyTorch weights.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from uniformerv2.export.onnx import INPUT_NAME, ExportError, parse_metadata, require

__all__ = ["OnnxModel", "load_onnx"]

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxModel(nn.Module):
    """An exported UniFormerV2 run by onnxruntime; looks like a model to the inference helpers.

    Args:
        path: a file written by :func:`uniformerv2.export_onnx`.
        providers: onnxruntime execution providers, best first (default: CPU).
        num_threads: intra-op threads (default: onnxruntime's choice, one per core).

    Attributes:
        config: ``num_classes`` and the exported architecture fields.
        pretrained_cfg: ``labels``, ``preprocess`` (:class:`PreprocessConfig`), ``source`` and
            the export ``info`` (dtype, dynamic dimensions, opset input/outputs).
        num_features: width of the ``features`` output.
        device: where outputs are returned by default (``cpu``).
    """

    def __init__(
        self, path: str | os.PathLike[str], providers: list[str] | None = None, num_threads: int | None = None
    ) -> None:
        super().__init__()
        ort = require("onnxruntime")
        if not Path(path).is_file():
            raise ExportError(f"{path}: no such file")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{path}: onnxruntime cannot load this file: {first}") from exc
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        labels = meta["labels"]
        self.pretrained_cfg: dict[str, Any] = {
            "labels": labels,
            "preprocess": meta["preprocess"],
            "source": str(path),
            "info": meta["info"],
        }
        self.config = SimpleNamespace(**{**meta["info"].get("config", {}), "num_classes": len(labels)})
        video = self.session.get_inputs()[0]
        self._input_type = _NUMPY_TYPES.get(video.type, np.float32)
        self._input_shape = video.shape  # ints for fixed dimensions, names for free ones
        outputs = {o.name: o for o in self.session.get_outputs()}
        self.num_features = outputs["features"].shape[-1] if "features" in outputs else None
        self.device = torch.device("cpu")
        # The file's SHA-1 stands for the weights in state_dict(), so that results of two files never mix.
        self.register_buffer("file_sha1", torch.tensor(list(_sha1(path)), dtype=torch.uint8))

    def _run(self, video: torch.Tensor, output: str) -> torch.Tensor:
        """(B, 3, T, S, S) -> the named output as a float32 tensor on ``video``'s device."""
        self._check(video)
        array = video.detach().to("cpu", torch.float32).numpy().astype(self._input_type, copy=False)
        (result,) = self.session.run([output], {INPUT_NAME: array})
        return torch.from_numpy(np.asarray(result, dtype=np.float32)).to(video.device)

    def _check(self, video: torch.Tensor) -> None:
        expected = self._input_shape
        fixed = [(i, d) for i, d in enumerate(expected) if isinstance(d, int)]
        if video.ndim != len(expected) or any(video.shape[i] != d for i, d in fixed):
            shape = "x".join(str(d) if isinstance(d, int) else "?" for d in expected)
            raise ValueError(
                f"{self.pretrained_cfg['source']}: exported for input {shape}, got {'x'.join(map(str, video.shape))}"
            )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, S, S) normalised video -> logits (B, num_classes)."""
        return self._run(video, "logits")

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, S, S) -> the fused representation before the head's LayerNorm (B, n)."""
        return self._run(video, "features")


def _sha1(path: str | os.PathLike[str]) -> bytes:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.digest()


def load_onnx(
    path: str | os.PathLike[str], providers: list[str] | None = None, num_threads: int | None = None
) -> OnnxModel:
    """Open an exported file for inference (see :class:`OnnxModel`)."""
    return OnnxModel(path, providers=providers, num_threads=num_threads)
