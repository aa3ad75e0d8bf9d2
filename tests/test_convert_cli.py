"""`uniformerv2 convert`: official <-> ours round trip, MMAction2 with label re-ordering."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_LABELS, make_tiny_model, save_mmaction2, save_official, tiny_preprocess

import uniformerv2
from uniformerv2.cli.main import main
from uniformerv2.inference import predict
from uniformerv2.weights import permute_head

MM_ORDER = [3, 0, 4, 1, 2]


def _scores(model, video) -> dict[str, float]:
    model.pretrained_cfg["preprocess"] = tiny_preprocess()
    return {r["label"]: r["score"] for r in predict(video, model, top_k=None)}


def _write_labels(path: Path, labels: list[str]) -> Path:
    path.write_text("\n".join(labels) + "\n")
    return path


def test_official_to_ours_to_official_is_bit_identical(capsys, tmp_path) -> None:
    src = save_official(make_tiny_model(), tmp_path / "tiny.pyth")
    assert main(["convert", str(src), str(tmp_path / "ours")]) == 0
    assert (tmp_path / "ours" / "model.safetensors").exists()
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "back.pyth")]) == 0
    before = torch.load(src, weights_only=True)
    after = torch.load(tmp_path / "back.pyth", weights_only=True)
    assert set(before) == set(after)
    for key, value in before.items():
        assert after[key].dtype == value.dtype and torch.equal(after[key], value), key
    assert "ours" in capsys.readouterr().out


def test_mmaction2_to_ours_with_label_permutation(capsys, tmp_path, make_test_video) -> None:
    video = make_test_video(num_frames=20)
    reference = make_tiny_model()
    mm_model = make_tiny_model()
    mm_model.load_state_dict(permute_head(mm_model.state_dict(), MM_ORDER))
    mm_labels = [TINY_LABELS[i] for i in MM_ORDER]
    src = save_mmaction2(mm_model, tmp_path / "mm.pth")
    labels_from = _write_labels(tmp_path / "mm_labels.txt", mm_labels)
    labels_to = _write_labels(tmp_path / "labels.txt", TINY_LABELS)
    argv = [
        "convert",
        str(src),
        str(tmp_path / "ours"),
        "--labels-from",
        str(labels_from),
        "--labels-to",
        str(labels_to),
    ]
    assert main(argv) == 0
    ours = uniformerv2.load_model(tmp_path / "ours")
    assert ours.pretrained_cfg["labels"] == TINY_LABELS
    for key, value in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key  # rows back in the reference order
    expected = _scores(uniformerv2.load_model(src, labels=mm_labels), video)
    assert _scores(ours, video) == pytest.approx(expected, abs=1e-6)


def test_ours_to_mmaction2_and_subset_of_classes(capsys, tmp_path, make_test_video) -> None:
    make_test_video(num_frames=20)
    src = save_official(make_tiny_model(), tmp_path / "tiny.pyth")
    labels = _write_labels(tmp_path / "labels.txt", TINY_LABELS)
    subset = _write_labels(tmp_path / "subset.txt", ["eating", "archery"])
    assert (
        main(["convert", str(src), str(tmp_path / "mm.pth"), "--labels-from", str(labels), "--labels-to", str(subset)])
        == 0
    )
    mm = uniformerv2.load_model(tmp_path / "mm.pth", labels=["eating", "archery"])
    assert mm.config.num_classes == 2
    full = uniformerv2.load_model(src, labels=TINY_LABELS)
    mm.pretrained_cfg["preprocess"] = full.pretrained_cfg["preprocess"] = tiny_preprocess()
    with torch.no_grad():
        x = torch.randn(2, 3, 4, 32, 32)
        torch.testing.assert_close(mm(x), full(x)[:, [4, 0]])


def test_convert_errors_are_one_line(capsys, tmp_path) -> None:
    src = save_official(make_tiny_model(), tmp_path / "tiny.pyth")
    assert main(["convert", str(src), str(tmp_path / "out.bin")]) == 2
    assert "pass --to" in capsys.readouterr().err
    wrong = _write_labels(tmp_path / "three.txt", ["a", "b", "c"])
    assert main(["convert", str(src), str(tmp_path / "o"), "--labels-from", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "3 labels, but the model has 5 classes" in err
    other = _write_labels(tmp_path / "other.txt", ["x", "y"])
    assert main(["convert", str(src), str(tmp_path / "o"), "--labels-to", str(other)]) == 2
    assert "label lists do not match" in capsys.readouterr().err
