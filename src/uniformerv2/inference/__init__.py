"""Inference helpers: classify videos, embed them, and score long videos window by window."""

from uniformerv2.inference._predict import embed, embed_many, predict, predict_many
from uniformerv2.inference._timeline import plot_timeline, timeline
from uniformerv2.inference.engine import Result

__all__ = ["Result", "embed", "embed_many", "plot_timeline", "predict", "predict_many", "timeline"]
