"""Training augmentation: clip consistency, each op against PIL, determinism, shapes (§3.4)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video import TrainTransform
from uniformerv2.video.augment import OPS, ClipRandAugment, RandAugmentPolicy, apply_op, random_resized_crop


def _image(h=32, w=40, seed=0) -> np.ndarray:
    gen = np.random.default_rng(seed)
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.array([1.0, 0.6, 0.3])
    noise = gen.normal(0, 20, (h, w, 3))
    return np.clip(base + noise + np.linspace(0, 60, h)[:, None, None], 0, 255).astype(np.uint8)


def _clip(image: np.ndarray, t=1) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).repeat(t, 1, 1, 1)


PIL_OPS = {
    "AutoContrast": (None, lambda im, a: ImageOps.autocontrast(im)),
    "Equalize": (None, lambda im, a: ImageOps.equalize(im)),
    "Invert": (None, lambda im, a: ImageOps.invert(im)),
    "PosterizeIncreasing": (2, lambda im, a: ImageOps.posterize(im, a)),
    "SolarizeIncreasing": (100, lambda im, a: ImageOps.solarize(im, a)),
    "SolarizeAdd": (60, lambda im, a: Image.eval(im, lambda i: min(255, i + a) if i < 128 else i)),
    "ColorIncreasing": (1.6, lambda im, a: ImageEnhance.Color(im).enhance(a)),
    "ContrastIncreasing": (0.4, lambda im, a: ImageEnhance.Contrast(im).enhance(a)),
    "BrightnessIncreasing": (1.5, lambda im, a: ImageEnhance.Brightness(im).enhance(a)),
    "SharpnessIncreasing": (1.8, lambda im, a: ImageEnhance.Sharpness(im).enhance(a)),
}
_BICUBIC = dict(resample=Image.BICUBIC, fillcolor=(128, 128, 128))
PIL_GEOMETRIC = {
    "Rotate": (20.0, lambda im, a: im.rotate(a, **_BICUBIC)),
    "ShearX": (0.2, lambda im, a: im.transform(im.size, Image.AFFINE, (1, a, 0, 0, 1, 0), **_BICUBIC)),
    "ShearY": (-0.2, lambda im, a: im.transform(im.size, Image.AFFINE, (1, 0, 0, a, 1, 0), **_BICUBIC)),
    "TranslateXRel": (
        0.25,
        lambda im, a: im.transform(im.size, Image.AFFINE, (1, 0, a * im.size[0], 0, 1, 0), **_BICUBIC),
    ),
    "TranslateYRel": (
        -0.25,
        lambda im, a: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, a * im.size[1]), **_BICUBIC),
    ),
}


@pytest.mark.parametrize("name", PIL_OPS)
def test_pixel_ops_match_pil(name):
    arg, pil_fn = PIL_OPS[name]
    image = _image()
    ours = apply_op(_clip(image), name, arg)[0].permute(1, 2, 0).numpy()
    ref = np.asarray(pil_fn(Image.fromarray(image), arg))
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1, name
    assert not np.array_equal(ours, image)  # every op changes this picture


@pytest.mark.parametrize("name", PIL_GEOMETRIC)
def test_geometric_ops_close_to_pil(name):
    arg, pil_fn = PIL_GEOMETRIC[name]
    image = _image()
    ours = apply_op(_clip(image), name, arg)[0].permute(1, 2, 0).numpy().astype(int)
    ref = np.asarray(pil_fn(Image.fromarray(image), arg)).astype(int)
    assert np.abs(ours - ref).mean() < 6, name  # bicubic kernels differ slightly from PIL's
    assert not np.array_equal(ours, image)


def test_identity_cases():
    image = _clip(_image())
    for name, arg in [
        ("PosterizeIncreasing", 8),
        ("SolarizeIncreasing", 256),
        ("SolarizeAdd", 0),
        ("ColorIncreasing", 1.0),
        ("BrightnessIncreasing", 1.0),
        ("Rotate", 0.0),
        ("ShearX", 0.0),
        ("TranslateXRel", 0.0),
    ]:
        assert torch.equal(apply_op(image, name, arg), image), name
    flat = torch.full((1, 3, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(apply_op(flat, "AutoContrast", None), flat)
    assert torch.equal(apply_op(flat, "Equalize", None), flat)
    moved = apply_op(image, "TranslateXRel", 0.5)
    assert (moved[..., -12:] == 128).all()  # uncovered pixels are filled with grey 128


@pytest.mark.parametrize("name", OPS)
def test_clip_consistency_per_op(name):
    arg = {**{k: v[0] for k, v in PIL_OPS.items()}, **{k: v[0] for k, v in PIL_GEOMETRIC.items()}}[name]
    out = apply_op(_clip(_image(), t=4), name, arg)
    assert out.dtype == torch.uint8 and out.shape == (4, 3, 32, 40)
    assert all(torch.equal(out[0], out[i]) for i in range(1, 4))


def test_rand_augment_clip_consistent_and_deterministic():
    aug = ClipRandAugment("rand-m7-n4-mstd0.5-inc1")
    assert aug.policy == RandAugmentPolicy(num_ops=4, magnitude=7, magnitude_std=0.5)
    clip = _clip(_image(), t=3)
    for seed in range(20):
        out = aug(clip, random.Random(seed))
        assert all(torch.equal(out[0], out[i]) for i in (1, 2))
        assert torch.equal(out, aug(clip, random.Random(seed)))
    plans = [aug.sample(random.Random(s)) for s in range(400)]
    applied = [len(p) for p in plans]
    assert 1.7 < np.mean(applied) < 2.3  # 4 ops at p = 0.5
    assert {name for p in plans for name, _ in p} == set(OPS)


def test_policy_parsing_errors():
    with pytest.raises(ValueError):
        RandAugmentPolicy.from_string("rand-m9-mstd0.5")  # inc0 op set not implemented
    with pytest.raises(ValueError):
        RandAugmentPolicy.from_string("augmix-m5")


def test_random_resized_crop_box_and_fallback():
    x = torch.arange(20 * 30, dtype=torch.float32).view(1, 1, 20, 30).repeat(3, 2, 1, 1)
    out = random_resized_crop(x, 16, random.Random(0))
    assert out.shape == (3, 2, 16, 16)
    assert torch.equal(out[:, 0], out[:, 1])  # one box for every frame
    # scale (2, 3) can never fit: falls back to the centre crop clamped to the aspect range.
    wide = torch.arange(10 * 40, dtype=torch.float32).view(1, 1, 10, 40)
    out = random_resized_crop(wide, 10, random.Random(0), scale=(2.0, 3.0))
    w = round(10 * 1.3333)  # 13 wide, centred
    centre = wide[..., :, (40 - w) // 2 : (40 - w) // 2 + w]
    expected = torch.nn.functional.interpolate(centre, size=(10, 10), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("channel_order", ["RGB", "BGR"])
def test_train_transform(channel_order):
    cfg = PreprocessConfig(num_frames=4, crop_size=24, channel_order=channel_order)
    frames = torch.from_numpy(_image(36, 48)).unsqueeze(0).repeat(4, 1, 1, 1)
    tf = TrainTransform(cfg, num_samples=2)
    out = tf(frames, random.Random(5))
    assert out.shape == (2, 3, 4, 24, 24) and out.dtype == torch.float32
    assert torch.equal(out, tf(frames, random.Random(5)))
    assert not torch.equal(out[0], out[1])  # independent views of the same frames
    assert all(torch.equal(out[:, :, 0], out[:, :, t]) for t in range(1, 4))  # identical frames stay identical


def test_train_transform_without_augment_is_crop_of_normalised():
    cfg = PreprocessConfig(num_frames=2, crop_size=16)
    frames = torch.from_numpy(_image(16, 16)).unsqueeze(0).repeat(2, 1, 1, 1)
    tf = TrainTransform(cfg, auto_augment=None, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    out = tf(frames, random.Random(0))[0]
    expected = (frames.permute(3, 0, 1, 2).float() / 255 - 0.45) / 0.225
    torch.testing.assert_close(out, expected)
    flipped = TrainTransform(cfg, auto_augment=None, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    outs = [flipped(frames, random.Random(s))[0] for s in range(8)]
    assert any(torch.equal(o, expected.flip(-1)) for o in outs) and any(torch.equal(o, expected) for o in outs)
