"""Evaluate checkpoints like a lab: multi-view top-1/top-5/mean-class accuracy, confusion matrix,
per-video predictions, the protocol stated, lists checked against the head's class order."""

from uniformerv2.evaluation.core import PREDICTION_COLUMNS, EvalResult, evaluate
from uniformerv2.evaluation.lists import EvalItem, EvalList, LabelError, read_eval_list
from uniformerv2.evaluation.metrics import Metrics, compute_metrics
from uniformerv2.evaluation.plot import plot_confusion
from uniformerv2.evaluation.protocol import describe_protocol, format_protocol

__all__ = [
    "PREDICTION_COLUMNS",
    "EvalItem",
    "EvalList",
    "EvalResult",
    "LabelError",
    "Metrics",
    "compute_metrics",
    "describe_protocol",
    "evaluate",
    "format_protocol",
    "plot_confusion",
    "read_eval_list",
]
