"""Deployment: ONNX export with self-describing metadata, onnxruntime inference, int8 quantization."""

from uniformerv2.export.onnx import ExportError, export_onnx, quantize_onnx, read_onnx_metadata
from uniformerv2.export.session import OnnxModel, load_onnx

__all__ = ["ExportError", "OnnxModel", "export_onnx", "load_onnx", "quantize_onnx", "read_onnx_metadata"]
