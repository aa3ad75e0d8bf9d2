"""Decoding: exact frames after seeking, frame counts, rotation, inputs and broken files."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import random

import numpy as np
import pytest
import torch
from videogen import decode_index, frame_image, make_audio, make_video, truncate, write_frame_folder

from uniformerv2.errors import VideoDecodeError
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video import load_clip, open_video, segment_indices
from uniformerv2.video.decode import FrameFolderReader, PyAVReader

N = 40
FORMATS = {
    "h264_bframes_longgop.mp4": dict(codec="libx264", gop=250, bframes=3),
    "h264_gop8.mp4": dict(codec="libx264", gop=8, bframes=2),
    "h264_opengop.mkv": dict(codec="libx264", gop=10, bframes=3, options={"open_gop": "1"}),
    "vp9.webm": dict(codec="libvpx-vp9", gop=12),
    "mjpeg.avi": dict(codec="mjpeg"),
    "mpeg4.avi": dict(codec="mpeg4", gop=12),
    "mpeg4_bframes.mp4": dict(codec="mpeg4", gop=12, bframes=2),
    "vfr.mp4": dict(codec="libx264", vfr=True, gop=10),
    "odd_yuv444.mkv": dict(codec="libx264", width=97, height=61, pix_fmt="yuv444p"),
    "yuv420p10.mp4": dict(codec="libx264", pix_fmt="yuv420p10le", gop=10),
    "h264_bframes.ts": dict(codec="libx264", gop=250, bframes=3),
    "h264_gop10.ts": dict(codec="libx264", gop=10, bframes=2),
    "h264_faststart.mp4": dict(codec="libx264", gop=10, bframes=2, container_options={"movflags": "faststart"}),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for name, kw in FORMATS.items():
        kw = dict(kw)
        size = (kw.pop("width", 64), kw.pop("height", 48))
        out[name] = make_video(root / name, N, *size, **kw)
    return out


def _indices_of(frames: torch.Tensor) -> list[int]:
    return [decode_index(f) for f in frames]


@pytest.mark.parametrize("name", FORMATS)
def test_exact_frames_after_seeking(videos, name):
    reader = open_video(videos[name])
    assert reader.num_frames == N
    gen = random.Random(name)
    for _ in range(4):
        idx = [gen.randrange(N) for _ in range(9)]
        frames = reader.get_frames(idx)
        assert frames.dtype == torch.uint8 and frames.shape[0] == len(idx) and frames.shape[-1] == 3
        assert _indices_of(frames) == idx
    assert _indices_of(reader.get_frames([N - 1, 0, N - 1])) == [N - 1, 0, N - 1]


@pytest.mark.parametrize("name", ["h264_bframes_longgop.mp4", "vp9.webm", "vfr.mp4"])
def test_iter_frames(videos, name):
    reader = open_video(videos[name])
    assert [decode_index(f) for f in reader.iter_frames()] == list(range(N))
    assert [decode_index(f) for f in reader.iter_frames(17, 23)] == list(range(17, 23))


def test_metadata(videos):
    reader = open_video(videos["h264_bframes_longgop.mp4"])
    assert (reader.height, reader.width, reader.fps, reader.codec) == (48, 64, 25.0, "h264")
    assert reader.duration == pytest.approx(N / 25)
    webm = open_video(videos["vp9.webm"])
    assert webm.num_frames == N and webm.codec == "vp9"  # container stores no frame count
    odd = open_video(videos["odd_yuv444.mkv"])
    assert (odd.height, odd.width) == (61, 97)


def test_uses_seeking_not_full_decode(videos, monkeypatch):
    reader = open_video(videos["h264_gop8.mp4"])
    assert reader.num_frames == N
    monkeypatch.setattr(PyAVReader, "_frames_sequential", lambda self: pytest.fail("decoded from the start"))
    assert _indices_of(reader.get_frames([35, 20])) == [35, 20]


@pytest.mark.parametrize("count", [1, 3])
def test_short_videos_repeat_indices(tmp_path, count):
    path = make_video(tmp_path / f"short{count}.mp4", count)
    frames = load_clip(path, PreprocessConfig(num_frames=8, num_clips=1), 0)
    assert _indices_of(frames) == segment_indices(count, 8, 0, 1)
    assert len(set(_indices_of(frames))) == count


def test_rotation(tmp_path):
    path = make_video(tmp_path / "rot.mp4", 6, 64, 48, rotation=90)
    reader = open_video(path)
    assert (reader.height, reader.width) == (64, 48)
    frames = reader.get_frames([4, 1])
    assert frames.shape == (2, 64, 48, 3)
    upright = torch.rot90(frames, -1, dims=(1, 2))  # undo the 90° counter-clockwise display rotation
    assert _indices_of(upright) == [4, 1]
    assert torch.equal(upright[0], torch.from_numpy(frame_image(4, 64, 48))) or decode_index(upright[0]) == 4


def test_max_short_side(videos):
    reader = open_video(videos["h264_gop8.mp4"], max_short_side=24)
    frames = reader.get_frames([3, 30])
    assert frames.shape == (2, 24, 32, 3) and (reader.height, reader.width) == (24, 32)
    assert _indices_of(frames) == [3, 30]


def test_non_ascii_path(tmp_path):
    path = make_video(tmp_path / "vidéo 動画 ü.mp4", 5)
    assert _indices_of(open_video(path).get_frames([4, 2])) == [4, 2]
    assert _indices_of(open_video(str(path)).get_frames([0])) == [0]


def test_index_out_of_range(videos):
    reader = open_video(videos["h264_gop8.mp4"])
    for bad in ([N], [-1], [0, N + 5]):
        with pytest.raises(VideoDecodeError, match="out of range"):
            reader.get_frames(bad)


def test_pickle_and_forked_workers(videos):
    reader = open_video(videos["h264_bframes_longgop.mp4"])
    reader.get_frames([5])  # opened and used in the parent
    clone = pickle.loads(pickle.dumps(reader))
    assert _indices_of(clone.get_frames([7, 3])) == [7, 3]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.map(_child_decode, [(reader, [i, N - 1 - i]) for i in range(4)])
    assert got == [[i, N - 1 - i] for i in range(4)]
    assert _indices_of(reader.get_frames([9])) == [9]


def _child_decode(args):
    reader, idx = args
    return _indices_of(reader.get_frames(idx))


# -- inputs other than files -----------------------------------------------------------------


@pytest.mark.parametrize("template", ["img_{:05d}.jpg", "{:05d}.jpg"])
def test_frame_folder_one_based(tmp_path, template):
    folder = write_frame_folder(tmp_path / "frames", 12, template)
    assert sorted(os.listdir(folder))[0] == template.format(1)
    for reader in (open_video(folder), open_video(folder, template=template)):
        assert isinstance(reader, FrameFolderReader) and reader.num_frames == 12
        assert _indices_of(reader.get_frames([11, 0, 5, 5])) == [11, 0, 5, 5]
        assert (reader.height, reader.width) == (48, 64)
    clip = load_clip(folder, PreprocessConfig(num_frames=4, num_clips=1), 0)
    assert _indices_of(clip) == segment_indices(12, 4, 0, 1)


def test_array_and_tensor_input():
    array = np.stack([frame_image(i, 32, 24) for i in range(10)])
    for source in (array, torch.from_numpy(array)):
        reader = open_video(source)
        assert reader.num_frames == 10 and (reader.height, reader.width) == (24, 32)
        assert torch.equal(reader.get_frames([3, 1]), torch.from_numpy(array[[3, 1]]))
        assert len(list(reader.iter_frames(2, 5))) == 3
    with pytest.raises(ValueError):
        open_video(array.astype(np.float32))


# -- broken inputs -----------------------------------------------------------------------------


def _assert_error(path, match):
    with pytest.raises(VideoDecodeError, match=match) as info:
        reader = open_video(path)
        reader.get_frames(list(range(reader.num_frames)))
    assert str(path) in str(info.value)


def test_missing_and_empty_and_directory(tmp_path):
    _assert_error(tmp_path / "missing.mp4", "does not exist")
    (tmp_path / "empty.mp4").write_bytes(b"")
    _assert_error(tmp_path / "empty.mp4", "empty")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("x")
    _assert_error(tmp_path / "nothing", "no frame images")


def test_not_a_video(tmp_path):
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    _assert_error(tmp_path / "text.mp4", "not a readable video|cannot open")
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _assert_error(tmp_path / "random.mp4", "not a readable video|cannot open|no video stream")


@pytest.mark.parametrize("codec,ext", [("aac", "m4a"), ("mp2", "mp2")])
def test_audio_only(tmp_path, codec, ext):
    path = make_audio(tmp_path / f"audio.{ext}", codec)
    _assert_error(path, "no video stream")


def _has_torchcodec() -> bool:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:  # not installed, or its FFmpeg libraries are missing
        return False
    return True


@pytest.mark.skipif(not _has_torchcodec(), reason="torchcodec (and system FFmpeg) not installed")
@pytest.mark.parametrize("name", ["h264_bframes_longgop.mp4", "vp9.webm", "mjpeg.avi", "vfr.mp4"])
def test_torchcodec_backend_matches_pyav(videos, name):
    path = videos[name]
    pyav = open_video(path, backend="pyav")
    codec = open_video(path, backend="torchcodec")
    assert codec.num_frames == pyav.num_frames
    wanted = [pyav.num_frames - 1, 0, 7, 7, pyav.num_frames // 2]
    assert _indices_of(codec.get_frames(wanted)) == wanted
    assert torch.equal(codec.get_frames(wanted), pyav.get_frames(wanted))


_TORCHCODEC = pytest.param(
    "torchcodec", marks=pytest.mark.skipif(not _has_torchcodec(), reason="torchcodec (and system FFmpeg) not installed")
)


@pytest.mark.parametrize("backend", ["pyav", _TORCHCODEC])
@pytest.mark.parametrize("name", ["h264_faststart.mp4", "vp9.webm", "h264_opengop.mkv", "mjpeg.avi", "h264_gop10.ts"])
def test_truncated(videos, tmp_path, name, backend):
    """Files cut at 10/50/90 %: an error naming the file, or exact frames before the cut and an
    error beyond it, never a wrong frame. PyAV must read what the cut left: frames of a 90 % cut,
    and the first frame of a 50 % cut where the header is small."""
    readable = {}
    for fraction in (0.1, 0.5, 0.9):
        path = truncate(videos[name], fraction, tmp_path / f"cut_{fraction}_{name}")
        try:
            reader = open_video(path, backend=backend)
            count = reader.num_frames
        except VideoDecodeError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            continue
        assert 0 < count < N
        with pytest.raises(VideoDecodeError, match=path.name):
            reader.get_frames([N - 1])  # beyond the cut: never a wrong or missing frame
        good = []
        for i in (0, count // 2, count - 1):  # before the cut: the exact frame or an error
            try:
                frame = reader.get_frames([i])
            except VideoDecodeError:
                continue
            assert _indices_of(frame) == [i]
            good.append(i)
        readable[fraction] = good
    if backend == "pyav":
        assert len(readable.get(0.9, [])) >= 2
        if name.endswith((".webm", ".avi", ".ts")):  # small headers: half the file holds the first frames
            assert 0 in readable.get(0.5, [])


def test_truncated_mp4_with_index_at_the_end_is_refused(videos, tmp_path):
    for fraction in (0.1, 0.5, 0.9):
        path = truncate(videos["h264_bframes_longgop.mp4"], fraction, tmp_path / f"cut_{fraction}.mp4")
        with pytest.raises(VideoDecodeError) as info:
            open_video(path).get_frames([0])
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def _write_with_cover(path, with_video: bool):
    """An MP4/M4A holding an AAC track, a JPEG cover picture (attached_pic) and optionally H.264 video."""
    import av
    import av.stream
    import numpy as np

    out = av.open(str(path), "w", format="mp4")
    cover = out.add_stream("mjpeg", rate=1)
    cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
    cover.disposition = av.stream.Disposition.attached_pic
    audio = out.add_stream("aac", rate=22050)
    video = out.add_stream("libx264", rate=25) if with_video else None
    if video is not None:
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24").reformat(
        format="yuvj420p"
    )
    for packet in [*cover.encode(picture), *cover.encode()]:
        out.mux(packet)
    samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    samples.sample_rate = 22050
    for packet in [*audio.encode(samples), *audio.encode()]:
        out.mux(packet)
    if video is not None:
        from videogen import frame_image

        for i in range(12):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame_image(i, 64, 48), format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    out.close()
    return path


def test_cover_art_is_not_the_video(tmp_path):
    music = _write_with_cover(tmp_path / "song.m4a", with_video=False)
    with pytest.raises(VideoDecodeError, match="no video stream .*cover image"):
        _ = open_video(music).num_frames
    clip = _write_with_cover(tmp_path / "clip.mp4", with_video=True)
    reader = open_video(clip)
    assert reader.num_frames == 12
    assert _indices_of(reader.get_frames([11, 0, 5])) == [11, 0, 5]


def _write_resolution_change(path):
    """An MPEG-TS H.264 stream whose frames 0-9 are 64x48 and 10-19 are 96x72 (new SPS midway)."""
    from fractions import Fraction

    import av

    def segment(first: int, width: int, height: int) -> list:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25)
        ctx.options = {"repeat-headers": "1"}
        packets = []
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(frame_image(first + i, width, height), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            packets += ctx.encode(frame)
        packets += ctx.encode(None)
        for packet in packets:  # keep the encoder's (B-frame) timestamps, shifted to the segment start
            packet.pts, packet.dts = packet.pts + first, packet.dts + first
        return packets

    out = av.open(str(path), "w", format="mpegts")
    stream = out.add_stream("h264", rate=25)
    stream.width, stream.height = 64, 48
    for packet in segment(0, 64, 48) + segment(10, 96, 72):
        packet.stream, packet.time_base = stream, Fraction(1, 25)
        out.mux(packet)
    out.close()
    return path


def test_resolution_change_midway_keeps_the_first_size(tmp_path):
    reader = open_video(_write_resolution_change(tmp_path / "change.ts"))
    assert (reader.num_frames, reader.height, reader.width) == (20, 48, 64)
    frames = reader.get_frames([0, 15, 19, 3])
    assert frames.shape == (4, 48, 64, 3)
    assert _indices_of(frames) == [0, 15, 19, 3]
    assert [f.shape for f in reader.iter_frames(8, 12)] == [(48, 64, 3)] * 4


@pytest.mark.parametrize("name,fmt", [("raw.h264", "h264"), ("raw.264", "h264"), ("raw.hevc", "hevc")])
def test_raw_elementary_stream(tmp_path, name, fmt):
    codec = "libx265" if fmt == "hevc" else "libx264"
    try:
        path = make_video(tmp_path / name, 30, codec=codec, format=fmt, gop=10, bframes=2)
    except Exception as exc:  # an FFmpeg build without the encoder
        pytest.skip(f"cannot write {fmt}: {exc}")
    reader = open_video(path)
    assert reader.num_frames == 30 and (reader.height, reader.width) == (48, 64)
    assert _indices_of(reader.get_frames([29, 0, 12, 12])) == [29, 0, 12, 12]
    assert [decode_index(f) for f in reader.iter_frames(25)] == list(range(25, 30))
    assert reader.verify().problems == []


@pytest.mark.parametrize("fraction", [0.7, 0.8, 0.85])
def test_truncated_file_streams_every_counted_frame(tmp_path, fraction):
    """A file cut inside a packet: every frame the reader counts streams in order (as ``timeline``
    reads it) and matches random access (as ``predict`` reads it)."""
    full = make_video(
        tmp_path / "full.mp4", 60, 160, 120, gop=10, bframes=3, container_options={"movflags": "faststart"}
    )
    cut = truncate(full, fraction, tmp_path / f"cut{fraction}.mp4")
    reader = open_video(cut)
    count = reader.num_frames
    assert 0 < count < 60
    streamed = [decode_index(f) for f in reader.iter_frames()]
    assert streamed == list(range(count))
    assert _indices_of(reader.get_frames([count - 1, 0])) == [count - 1, 0]


@pytest.mark.parametrize("fraction", [0.7, 0.75, 0.85])
def test_timeline_reads_a_truncated_file_that_predict_reads(tmp_path, fraction):
    from conftest import make_tiny_model

    from uniformerv2.inference import predict, timeline

    full = make_video(
        tmp_path / "full.mp4", 60, 160, 120, gop=10, bframes=3, container_options={"movflags": "faststart"}
    )
    cut = truncate(full, fraction, tmp_path / "cut.mp4")
    count = open_video(cut).num_frames
    model = make_tiny_model()
    assert predict(cut, model)  # top classes of the whole (shortened) video
    rows = timeline(cut, model, window=8, stride=4)
    assert rows and rows[-1]["end_frame"] <= count


@pytest.mark.parametrize("value", [0, -5, 2.5, True])
def test_max_short_side_must_be_a_positive_whole_number(videos, tmp_path, value):
    folder = write_frame_folder(tmp_path / "frames", 2)
    for source in (videos["h264_gop8.mp4"], folder, np.zeros((2, 8, 8, 3), np.uint8)):
        with pytest.raises(ValueError, match=f"short side .*got {value}"):
            open_video(source, max_short_side=value)
