"""ONNX export: onnxruntime parity with PyTorch, self-describing metadata, clear refusals.

Every export traces the model with torch.export (10-30 s on a 2-core CPU even for the tiny model),
so the tiny model is exported once per module through the CLI and shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import uniformerv2
from uniformerv2.cli.main import main
from uniformerv2.export import ExportError, export_onnx, load_onnx, read_onnx_metadata

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

GOLDEN = Path(__file__).resolve().parent / "assets" / "golden"
CASES = json.loads((GOLDEN / "cases.json").read_text())


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model directory, ONNX file) of the tiny model, exported with ``uniformerv2 export``."""
    from conftest import make_tiny_model

    root = tmp_path_factory.mktemp("export")
    model_dir = uniformerv2.save_pretrained(make_tiny_model(), root / "tiny")
    out = root / "tiny.onnx"
    assert main(["export", str(model_dir), str(out)]) == 0
    return model_dir, out


def _video(batch: int, frames: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_pytorch(tiny_export: tuple[Path, Path], batch: int) -> None:
    model_dir, path = tiny_export
    model = uniformerv2.load_model(model_dir)
    runtime = load_onnx(path)
    x = _video(batch, 4, 32, seed=batch)
    with torch.no_grad():
        torch.testing.assert_close(runtime(x), model(x), atol=1e-4, rtol=0)
        torch.testing.assert_close(runtime.forward_features(x), model.forward_features(x), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_metadata_round_trip(tiny_export: tuple[Path, Path]) -> None:
    """Labels, preprocessing and architecture read back from the file equal the model's own."""
    model_dir, path = tiny_export
    model = uniformerv2.load_model(model_dir)
    meta = read_onnx_metadata(path)
    assert meta["labels"] == model.pretrained_cfg["labels"]
    assert meta["preprocess"] == model.pretrained_cfg["preprocess"]
    assert meta["info"]["config"] == model.config.to_dict()
    assert meta["info"]["dtype"] == "fp32" and meta["info"]["dynamic_batch"] is True
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
    (video,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in video.type.tensor_type.shape.dim]
    assert video.name == "video" and dims[1:] == [3, 4, 32, 32] and isinstance(dims[0], str)
    assert [o.name for o in proto.graph.output] == ["logits", "features"]
    runtime = load_onnx(path)
    assert runtime.config.num_classes == 5 and runtime.num_features == model.num_features
    assert runtime.pretrained_cfg["preprocess"] == model.pretrained_cfg["preprocess"]


@pytest.mark.slow
def test_wrong_input_shape_is_one_line(tiny_export: tuple[Path, Path]) -> None:
    _, path = tiny_export
    with pytest.raises(ValueError, match=r"tiny\.onnx: exported for input \?x3x4x32x32, got 1x3x6x32x32"):
        load_onnx(path)(_video(1, 6, 32))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_checkpoints_export(tmp_path: Path, name: str) -> None:
    """The three official layouts (Kinetics, SSv2 with temporal downsampling, frozen P/14)."""
    case = CASES[name]
    frames, size = case["t_size"], case["input_resolution"]
    model = uniformerv2.load_model(GOLDEN / f"{name}.pyth")
    path = export_onnx(GOLDEN / f"{name}.pyth", tmp_path / "m.onnx", num_frames=frames, crop_size=size)
    runtime = load_onnx(path)
    io = torch.load(GOLDEN / f"{name}.io.pt", weights_only=True)
    torch.testing.assert_close(runtime(io["input"]), io["logits"], atol=1e-4, rtol=0)
    for batch in (1, 3):
        x = _video(batch, frames, size, seed=batch)
        with torch.no_grad():
            torch.testing.assert_close(runtime(x), model(x), atol=1e-4, rtol=0)
    assert read_onnx_metadata(path)["preprocess"].num_frames == frames


@pytest.mark.slow
def test_fp16_export_runs_on_cpu(tmp_path: Path) -> None:
    """fp16 graph (LayerNorms fp32, as under the official fp16 autocast) close to the fp32 model."""
    from conftest import make_tiny_model

    model = make_tiny_model()
    runtime = load_onnx(export_onnx(model, tmp_path / "m16.onnx", dtype="fp16"))
    assert runtime.pretrained_cfg["info"]["dtype"] == "fp16"
    x = _video(3, 4, 32)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(runtime(x), expected, atol=5e-3, rtol=1e-2)
    assert model.conv1.weight.dtype == torch.float32  # the caller's model is untouched


@pytest.mark.slow
def test_dynamic_frames(tmp_path: Path) -> None:
    """A free frame count: one file serves 4- and 8-frame clips exactly."""
    from conftest import make_tiny_model

    model = make_tiny_model()
    runtime = load_onnx(export_onnx(model, tmp_path / "t.onnx", dynamic_frames=True))
    for frames in (4, 8):
        x = _video(2, frames, 32)
        with torch.no_grad():
            torch.testing.assert_close(runtime(x), model(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 7}, r"ssv2_style\.pyth: this model downsamples time by 2 and needs an even --frames, got 7"),
        ({"opset": 17}, r"ssv2_style\.pyth: opset 17 is too old"),
        ({"crop_size": 8}, r"ssv2_style\.pyth: --size 8 is smaller than one 16x16 patch"),
        ({"dtype": "int4"}, r"ssv2_style\.pyth: dtype must be one of fp32, fp16, int8"),
    ],
)
def test_refusals_name_file_and_cause(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        export_onnx(GOLDEN / "ssv2_style.pyth", tmp_path / "x.onnx", **kwargs)
    assert not list(tmp_path.iterdir())


def test_cli_refusal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", str(GOLDEN / "ssv2_style.pyth"), str(tmp_path / "x.onnx"), "--frames", "7"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: ") and "ssv2_style.pyth" in err[0] and "even" in err[0]


def test_files_that_are_not_exports(tmp_path: Path) -> None:
    """A foreign ONNX file and a non-ONNX file are refused with the file's name and the cause."""
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["video"], ["logits"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("video", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(foreign))
    with pytest.raises(ExportError, match=r"foreign\.onnx: no labels, preprocess, uniformerv2 in the ONNX metadata"):
        load_onnx(foreign)
    with pytest.raises(ExportError, match=r"foreign\.onnx: no labels"):
        read_onnx_metadata(foreign)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(ExportError, match=r"junk\.onnx: onnxruntime cannot load this file"):
        load_onnx(junk)
    with pytest.raises(ExportError, match=r"missing\.onnx: no such file"):
        load_onnx(tmp_path / "missing.onnx")
