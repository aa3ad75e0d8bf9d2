"""Model directories and label files are validated when loaded: one line naming the file and the field.

A model directory is ``config.json`` + ``model.safetensors``; each case below edits one of them the
way a hand edit or another tool might, and must give a :class:`CheckpointError` (never a traceback,
a random classifier, a silent cast or NaN scores).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import make_tiny_model
from safetensors.torch import load_file, save_file

import uniformerv2
from uniformerv2 import CheckpointError
from uniformerv2.weights import save_pretrained
from uniformerv2.zoo import read_label_file


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return save_pretrained(make_tiny_model(), tmp_path / "model")


def _edit_config(directory: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    result = edit(config)
    path.write_text(json.dumps(config if result is None else result))
    return path


def _load_error(directory: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        uniformerv2.load_model(directory)
    message = str(info.value)
    assert "\n" not in message
    return message


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value

    return edit


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        del node[leaf]

    return edit


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda config: [config], "a JSON object"),
        (_set("architecture", None), "architecture"),
        (_set("preprocess", None), "preprocess"),
        (_set("architecture.width", "64"), "architecture.width"),
        (_set("architecture.return_list", "0,1"), "architecture.return_list"),
        (_set("architecture.frozen", "no"), "architecture.frozen"),
        (_set("architecture.local_mhra", "triple"), "architecture.local_mhra"),
        (_set("preprocess.num_frames", 4.5), "preprocess.num_frames"),
        (_set("preprocess.mean", [0.5, 0.5]), "preprocess.mean"),
        (_set("architecture.depth", 12), "architecture.depth"),
        (_set("preprocess.interpolation", "bicubic"), "preprocess.interpolation"),
        (_set("colour", "blue"), "colour"),
        (_delete("id2label"), "id2label"),
        (_delete("id2label.2"), "id2label"),
        (_set("id2label", {"0": "a", "1": "b"}), "id2label"),
        (_set("id2label.3", 7), "id2label.3"),
        (_set("num_classes", 7), "num_classes"),
        (_set("preprocess.std", [0.0, 0.0, 0.0]), "preprocess"),
        (_set("preprocess.std", [float("nan"), 0.2, 0.2]), "preprocess"),
        (_set("preprocess.mean", [float("inf"), 0.2, 0.2]), "preprocess"),
        (_set("preprocess.num_clips", 10**11), "preprocess"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_config_json_names_file_and_field(model_dir: Path, edit, field: str) -> None:
    path = _edit_config(model_dir, edit)
    message = _load_error(model_dir)
    assert message.startswith(f"{path}: ") and field in message


def test_classifier_that_does_not_match_config_json(model_dir: Path) -> None:
    """A head with 7 rows under a config that says 5 classes: refused, not replaced by a random head."""
    weights = model_dir / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["head.fc.weight"] = torch.randn(7, 64)
    tensors["head.fc.bias"] = torch.randn(7)
    save_file(tensors, str(weights))
    message = _load_error(model_dir)
    assert str(weights) in message and "head.fc.weight" in message and "config.json" in message


def test_integer_tensors_are_refused(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["blocks.0.attn.in_proj_weight"] = tensors["blocks.0.attn.in_proj_weight"].round().to(torch.int32)
    save_file(tensors, str(weights))
    message = _load_error(model_dir)
    assert str(weights) in message and "blocks.0.attn.in_proj_weight (int32)" in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(model_dir: Path, value: float) -> None:
    weights = model_dir / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["ln_pre.weight"][3] = value
    tensors["head.fc.bias"][0] = value
    save_file(tensors, str(weights))
    message = _load_error(model_dir)
    assert str(weights) in message and "ln_pre.weight" in message and "head.fc.bias" in message


def test_valid_directory_still_loads(model_dir: Path) -> None:
    model = uniformerv2.load_model(model_dir)
    assert model.pretrained_cfg["labels"] == ["archery", "bowling", "cooking", "dancing", "eating"]


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"\x00\x01\x02\x03binary\xff\xfe", "not a text file"),
        ("caf\xe9\nna\xefve\n".encode("latin-1"), "not UTF-8"),
        (b"\x00\x00\x00\x20ftypisom" + bytes(40), "not a text file"),
    ],
)
def test_label_file_that_is_not_utf8_text(tmp_path: Path, content: bytes, cause: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_label_file(path)
    assert not isinstance(info.value, UnicodeDecodeError)
    assert str(info.value).startswith(f"{path}: ") and cause in str(info.value)
