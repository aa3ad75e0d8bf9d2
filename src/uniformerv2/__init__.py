"""UniFormerV2: spatiotemporal learning by arming image ViTs with video UniFormer (Li et al., ICCV 2023)."""

from uniformerv2.api import create_model, from_pretrained, list_models, load_model
from uniformerv2.config import UniFormerV2Config
from uniformerv2.errors import CheckpointError, DownloadError, UniFormerV2Error, VideoDecodeError
from uniformerv2.evaluation import evaluate
from uniformerv2.export import export_onnx, load_onnx
from uniformerv2.flops import count_flops
from uniformerv2.inference import embed, plot_timeline, predict, timeline
from uniformerv2.model import UniFormerV2
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.version import __version__ as __version__
from uniformerv2.weights import load_weights, push_to_hub, save_pretrained
from uniformerv2.zoo import list_pretrained

__all__ = [
    "CheckpointError",
    "DownloadError",
    "PreprocessConfig",
    "UniFormerV2",
    "UniFormerV2Config",
    "UniFormerV2Error",
    "VideoDecodeError",
    "count_flops",
    "create_model",
    "embed",
    "evaluate",
    "export_onnx",
    "from_pretrained",
    "list_models",
    "list_pretrained",
    "load_model",
    "load_onnx",
    "load_weights",
    "plot_timeline",
    "predict",
    "push_to_hub",
    "save_pretrained",
    "timeline",
]
