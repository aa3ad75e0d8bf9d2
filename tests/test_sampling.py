"""Frame sampling against the official examples (§3.3) and a re-statement of the formulas."""

from __future__ import annotations

import random

import numpy as np
import pytest

from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.video import dense_indices, sample_indices, segment_indices

OFFICIAL_N300_T8 = [
    [7, 44, 82, 119, 157, 194, 231, 269],
    [14, 51, 89, 126, 164, 201, 238, 276],
    [22, 59, 97, 134, 172, 209, 246, 284],
    [29, 66, 104, 141, 179, 216, 253, 291],
]


@pytest.mark.parametrize("clip", range(4))
def test_official_test_clips(clip):
    assert segment_indices(300, 8, clip, 4) == OFFICIAL_N300_T8[clip]


def test_official_val_and_short():
    assert segment_indices(300, 8, 0, 1) == [18, 55, 93, 130, 168, 205, 242, 280]
    assert segment_indices(5, 8, 0, 1) == [0, 0, 1, 2, 2, 2, 3, 4]
    assert segment_indices(1, 8, 0, 1) == [0] * 8


def test_one_based():
    assert segment_indices(300, 8, 0, 1, one_based=True) == [i + 1 for i in segment_indices(300, 8, 0, 1)]


def _reference_test(n, t, k, num_k):
    seg = max(0.0, (n - 1) / t)
    duration = seg / (num_k + 1)
    return [min(int(np.round(seg * i)) + int(duration * (k + 1)), n - 1) for i in range(t)]


def test_property_test_mode():
    gen = random.Random(0)
    for _ in range(3000):
        n, t = gen.randint(1, 2000), gen.choice([1, 4, 8, 16, 32, 64])
        num_k = gen.randint(1, 10)
        k = gen.randrange(num_k)
        assert segment_indices(n, t, k, num_k) == _reference_test(n, t, k, num_k)


def test_property_train_mode():
    gen = random.Random(1)
    for _ in range(1000):
        n, t = gen.randint(1, 2000), gen.choice([1, 8, 16, 32])
        seg = max(0.0, (n - 1) / t)
        seed = gen.random()
        got = segment_indices(n, t, rng=random.Random(seed))
        ref_rng = random.Random(seed)
        ref = [min(ref_rng.randint(int(np.round(seg * i)), int(np.round(seg * (i + 1)))), n - 1) for i in range(t)]
        assert got == ref
        assert got == sorted(got) and 0 <= got[0] and got[-1] <= n - 1


def test_train_uses_global_random_by_default():
    random.seed(3)
    a = segment_indices(300, 8)
    random.seed(3)
    assert segment_indices(300, 8) == a


def test_dense():
    assert dense_indices(100, 8, 4, 0, 1) == [34 + 4 * i for i in range(8)]  # centre: delta=68
    assert dense_indices(100, 8, 4, 0, 3) == [4 * i for i in range(8)]
    assert dense_indices(100, 8, 4, 2, 3) == [68 + 4 * i for i in range(8)]
    assert dense_indices(10, 8, 4, 1, 3) == [0, 4, 8, 9, 9, 9, 9, 9]  # short video: clamp
    got = dense_indices(100, 8, 2, rng=random.Random(0))
    assert all(b - a == 2 for a, b in zip(got, got[1:], strict=False)) and got[-1] < 100


def test_sample_indices_dispatch():
    cfg = PreprocessConfig(num_frames=8, num_clips=4)
    assert sample_indices(300, cfg, 1) == OFFICIAL_N300_T8[1]
    assert sample_indices(300, cfg, 0, num_clips=1) == [18, 55, 93, 130, 168, 205, 242, 280]
    ssv2 = PreprocessConfig(num_frames=8, num_clips=1, one_based=True)
    assert sample_indices(300, ssv2, 0) == [19, 56, 94, 131, 169, 206, 243, 281]
    assert sample_indices(300, ssv2, 0, one_based=False)[0] == 18
    dense = PreprocessConfig(num_frames=4, sampling="dense", frame_interval=3, num_clips=1)
    assert sample_indices(100, dense, 0) == dense_indices(100, 4, 3, 0, 1)


@pytest.mark.parametrize("args", [(0, 8), (10, 0)])
def test_invalid_sizes(args):
    with pytest.raises(ValueError):
        segment_indices(*args)


def test_invalid_clip_idx():
    with pytest.raises(ValueError):
        segment_indices(10, 8, 4, 4)
