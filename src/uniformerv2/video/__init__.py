"""Video in: decoding, frame sampling, test views and training augmentation (official §3)."""

from uniformerv2.video.augment import TrainTransform
from uniformerv2.video.check import check_videos
from uniformerv2.video.decode import VideoReader, load_clip, open_video
from uniformerv2.video.sampling import dense_indices, sample_indices, segment_indices
from uniformerv2.video.transforms import extract_views, test_views, val_transform

__all__ = [
    "VideoReader",
    "open_video",
    "load_clip",
    "segment_indices",
    "dense_indices",
    "sample_indices",
    "extract_views",
    "test_views",
    "val_transform",
    "TrainTransform",
    "check_videos",
]
