"""Shared test helpers: tiny random UniFormerV2 models, their checkpoints in every format, videos.

Everything here is small enough for a 2-core CPU: 32 px inputs, 16 px patches, 2 blocks, 64 wide.
Factories are plain functions (importable as ``from conftest import ...``); fixtures wrap them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import uniformerv2
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.weights import from_ours, save_pretrained

sys.path.insert(0, str(Path(__file__).parent))  # tests/videogen.py and friends

TINY_LABELS = ["archery", "bowling", "cooking", "dancing", "eating"]


def tiny_preprocess(**overrides: object) -> PreprocessConfig:
    """4 frames, 32 px crops, 2 clips x 3 crops: the tiny model's test-time pipeline."""
    fields: dict = dict(num_frames=4, crop_size=32, num_clips=2, num_crops=3)
    fields.update(overrides)
    return PreprocessConfig(**fields)


def tiny_config(**overrides: object) -> uniformerv2.UniFormerV2Config:
    """The tiny architecture: 32 px, 16 px patches, 3 blocks of width 64 with 2 heads, 2 global blocks."""
    fields: dict = dict(
        input_resolution=32,
        patch_size=16,
        width=64,
        layers=3,
        heads=2,
        n_dim=64,
        n_head=2,
        return_list=(1, 2),
        num_classes=5,
    )
    fields.update(overrides)
    return uniformerv2.UniFormerV2Config(**fields)


def randomise(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Add N(0, scale) noise to every parameter, so zero-initialised paths matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return model


def random_clip(b: int = 2, t: int = 4, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """A deterministic random input batch (B, 3, T, H, W)."""
    return torch.randn(b, 3, t, h, w, generator=torch.Generator().manual_seed(seed))


def make_tiny_model(num_classes: int = 5, seed: int = 0, **overrides: object) -> uniformerv2.UniFormerV2:
    """A tiny UniFormerV2 in eval mode with every parameter randomised (deterministic per seed).

    The added UniFormerV2 modules start at zero, which would hide wiring bugs, so all parameters
    get N(0, 0.02) noise. ``pretrained_cfg`` carries :data:`TINY_LABELS` (or ``LABEL_i``) and
    :func:`tiny_preprocess`.
    """
    fields: dict = dict(layers=2, heads=1, n_head=1, return_list=(0, 1), num_classes=num_classes)
    fields.update(overrides)
    torch.manual_seed(seed)
    model = uniformerv2.UniFormerV2(tiny_config(**fields))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    labels = TINY_LABELS if num_classes == len(TINY_LABELS) else [f"LABEL_{i}" for i in range(num_classes)]
    model.pretrained_cfg = {"labels": list(labels), "preprocess": tiny_preprocess(), "source": "tiny"}
    return model.eval()


def save_official(model: uniformerv2.UniFormerV2, path: Path) -> Path:
    """Write ``model`` as an official release file: a flat ``backbone.``-prefixed state dict."""
    torch.save(from_ours(model.state_dict(), "official"), path)
    return path


def save_mmaction2(model: uniformerv2.UniFormerV2, path: Path) -> Path:
    """Write ``model`` as an MMAction2 checkpoint (``{"state_dict": ...}``)."""
    torch.save({"state_dict": from_ours(model.state_dict(), "mmaction2")}, path)
    return path


@pytest.fixture
def tiny_model() -> uniformerv2.UniFormerV2:
    """A fresh tiny model (seed 0) with labels and tiny preprocessing."""
    return make_tiny_model()


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """The tiny model saved in our layout (carries its labels and tiny preprocessing)."""
    return save_pretrained(make_tiny_model(), tmp_path / "tiny_model")


@pytest.fixture
def make_test_video(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make_test_video(name="clip.mp4", num_frames=24, width=64, height=48, **kw)``
    writing a :mod:`videogen` video into ``tmp_path``."""
    from videogen import make_video

    def make(name: str = "clip.mp4", num_frames: int = 24, width: int = 64, height: int = 48, **kwargs: object) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return make_video(path, num_frames, width, height, **kwargs)

    return make


# ------------------------------------------------------------------------------- training data


def write_video(path: Path, frames: object, fps: int = 25) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames (a numpy array) as H.264."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]  # type: ignore[attr-defined]
        stream.pix_fmt = "yuv420p"
        for frame in frames:  # type: ignore[attr-defined]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def make_brightness_dataset(root: Path, num_train: int = 16, num_val: int = 4, seed: int = 0) -> Path:
    """``root/{train,val}.csv`` (``name,label``) over noisy bright (1) and dark (0) 8-frame 64x48 videos."""
    import numpy as np

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", num_train), ("val", num_val)):
        lines = []
        for i in range(count):
            label = i % 2
            level = rng.uniform(170, 230) if label else rng.uniform(20, 80)
            frames = np.clip(level + rng.normal(0, 20, (8, 48, 64, 3)), 0, 255).astype(np.uint8)
            write_video(root / f"{split}_{i}.mp4", frames)
            lines.append(f"{split}_{i}.mp4,{label}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def tiny_train_config(data: Path, out: Path, *overrides: str):  # noqa: ANN201 (TrainConfig, imported lazily)
    """The ``debug_tiny`` training preset on a brightness data set, quiet, single-process, on CPU."""
    from uniformerv2.train import apply_overrides, get_preset

    base = [
        f"data.train_list={data / 'train.csv'}",
        f"data.val_list={data / 'val.csv'}",
        f"data.root={data}",
        f"output_dir={out}",
        "optim.batch_size=2",
        "progress=false",
        "device=cpu",
    ]
    return apply_overrides(get_preset("debug_tiny"), [*base, *overrides])


@pytest.fixture(scope="module")
def bright_dark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16/4-video brightness data set shared by a test module."""
    return make_brightness_dataset(tmp_path_factory.mktemp("bright_dark"))


@pytest.fixture(scope="module")
def bright_dark_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4/2-video brightness data set for many short runs."""
    return make_brightness_dataset(tmp_path_factory.mktemp("bright_dark_small"), num_train=4, num_val=2)
