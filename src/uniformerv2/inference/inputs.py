"""Inputs of ``predict``/``embed``/``timeline``: the shared rules of :mod:`uniformerv2.video.inputs`."""

from uniformerv2.video.inputs import LIST_EXTENSIONS, VIDEO_EXTENSIONS, collect_videos, read_video_list

__all__ = ["VIDEO_EXTENSIONS", "LIST_EXTENSIONS", "collect_videos", "read_video_list"]
