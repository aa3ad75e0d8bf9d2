"""Runtimes and precisions of `predict`: onnxruntime on an export, bf16 autocast, int8 quantization.

The tiny model is exported once per module (torch.export takes 10-30 s on a 2-core CPU).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import uniformerv2
from uniformerv2.cli.main import main
from uniformerv2.export import ExportError, OnnxModel, export_onnx, quantize_onnx, read_onnx_metadata
from uniformerv2.export.deploy import autocast_weights, prepare_model, use_matmul_attention
from uniformerv2.model.layers import Attention

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model directory, fp32 ONNX export) of the tiny model."""
    from conftest import make_tiny_model

    root = tmp_path_factory.mktemp("precision")
    model_dir = uniformerv2.save_pretrained(make_tiny_model(), root / "tiny")
    return model_dir, export_onnx(model_dir, root / "tiny.onnx")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from videogen import make_video

    return make_video(tmp_path_factory.mktemp("video") / "clip.mp4", 24, 64, 48)


def _predict_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: object) -> list[dict]:
    out = tmp_path / f"preds{len(list(tmp_path.iterdir()))}.json"
    code = main(["predict", *map(str, args), "--workers", "0", "--top-k", "5", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    return json.loads(out.read_text())


def _features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_features(x)


@pytest.mark.slow
def test_onnxruntime_predict_matches_pytorch(
    exported: tuple[Path, Path], video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same video pipeline from the ONNX metadata: same top-k labels, scores within 1e-4."""
    model_dir, path = exported
    ours = _predict_cli(capsys, tmp_path, video, "--model", model_dir)[0]["predictions"]
    ort = _predict_cli(capsys, tmp_path, video, "--runtime", "onnxruntime", "--model", path)[0]["predictions"]
    assert [p["label"] for p in ort] == [p["label"] for p in ours]
    for a, b in zip(ort, ours, strict=True):
        assert abs(a["score"] - b["score"]) <= 1e-4
    api = uniformerv2.predict(video, str(path), top_k=5)  # a .onnx path works in the Python API as well
    assert [p["label"] for p in api] == [p["label"] for p in ours]


@pytest.mark.slow
def test_bf16_is_autocast(
    exported: tuple[Path, Path], video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--precision bf16 gives what predict gives under bf16 autocast with matmul attention, and not the fp32 scores."""
    model_dir, _ = exported
    cli = _predict_cli(capsys, tmp_path, video, "--model", model_dir, "--precision", "bf16")[0]["predictions"]
    model = uniformerv2.load_model(model_dir)
    bf16 = use_matmul_attention(copy.deepcopy(model))
    assert cli == uniformerv2.predict(video, bf16, top_k=5, amp_dtype="bf16")
    fp32 = {p["label"]: p["score"] for p in uniformerv2.predict(video, model, top_k=5)}
    assert {p["label"]: p["score"] for p in cli} != fp32  # bf16 rounding shows in the scores


@pytest.mark.slow
def test_int8_onnx_quantization(exported: tuple[Path, Path], tmp_path: Path) -> None:
    """MatMul weights become int8 (smaller file), metadata survives, features keep their direction."""
    model_dir, path = exported
    quantized = quantize_onnx(path, tmp_path / "q.onnx")
    meta = read_onnx_metadata(quantized)
    assert meta["info"]["dtype"] == "int8" and meta["labels"] == read_onnx_metadata(path)["labels"]
    assert quantized.stat().st_size < 0.8 * path.stat().st_size
    x = torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    reference = _features(uniformerv2.load_model(model_dir), x)
    int8 = OnnxModel(quantized)
    assert F.cosine_similarity(int8.forward_features(x), reference).min() >= 0.99
    assert not torch.allclose(int8.forward_features(x), reference, atol=1e-5)  # it did quantize
    with pytest.raises(ExportError, match=r"q\.onnx: only an fp32 export can be quantized, this one is int8"):
        quantize_onnx(quantized, tmp_path / "qq.onnx")


@pytest.mark.slow
def test_int8_predict(
    exported: tuple[Path, Path], video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--precision int8 quantizes the fp32 export and runs it through the same pipeline."""
    _, path = exported
    cli = _predict_cli(capsys, tmp_path, video, "--runtime", "onnxruntime", "--model", path, "--precision", "int8")
    expected = uniformerv2.predict(video, OnnxModel(quantize_onnx(path, tmp_path / "q.onnx")), top_k=5)
    assert cli[0]["predictions"] == expected
    fp32 = uniformerv2.predict(video, OnnxModel(path), top_k=5)
    assert cli[0]["predictions"] != fp32


def test_bf16_weights_leave_autocast_outputs_unchanged() -> None:
    """Pre-cast matmul/conv weights give bit-identical outputs under autocast (autocast casts them anyway)."""
    from conftest import make_tiny_model

    model = make_tiny_model(temporal_downsample=True)  # with local MHRA convolutions
    prepared, amp = prepare_model(model, precision="bf16")
    assert amp == "bf16" and model.blocks[0].attn.in_proj_weight.dtype == torch.float32  # a copy by default
    assert prepared.blocks[0].attn.in_proj_weight.dtype == torch.bfloat16
    assert prepared.blocks[0].mlp.c_fc.weight.dtype == prepared.conv1.weight.dtype == torch.bfloat16
    assert prepared.head.norm.weight.dtype == prepared.positional_embedding.dtype == torch.float32
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    reference = use_matmul_attention(copy.deepcopy(model))  # fp32 weights, same attention function
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        assert torch.equal(prepared(x), reference(x))


def _attention_modules(model: torch.nn.Module) -> list[Attention]:
    return [m for m in model.modules() if isinstance(m, Attention)]


def test_matmul_attention_is_softmax_qk_v() -> None:
    """In fp32 the explicit softmax(q k^T / sqrt(d)) v matches the SDPA kernel to float rounding."""
    from conftest import make_tiny_model, random_clip

    model = make_tiny_model(heads=2, n_head=2)
    explicit = use_matmul_attention(copy.deepcopy(model))
    x = random_clip(b=2)
    torch.testing.assert_close(_features(explicit, x), _features(model, x), rtol=1e-5, atol=1e-5)
    assert not use_matmul_attention(explicit, enabled=False).blocks[0].attn.matmul_attention


def test_bf16_matmul_attention_agrees_with_bf16_sdpa_and_fp32_is_unchanged() -> None:
    """--precision bf16 uses matmul attention; its output is the bf16 SDPA output up to bf16
    rounding (feature cosine >= 0.9999, same top-1); fp32 keeps SDPA and its exact output."""
    from conftest import make_tiny_model, random_clip

    model = make_tiny_model(heads=2, n_head=2, num_classes=50, temporal_downsample=True)
    x = random_clip(b=6, seed=4)
    fp32_before = _features(model, x)
    prepared, amp = prepare_model(model, precision="bf16")
    assert all(m.matmul_attention for m in _attention_modules(prepared))
    assert not any(m.matmul_attention for m in _attention_modules(model))
    sdpa = autocast_weights(copy.deepcopy(model))
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        ours, theirs = prepared.forward_features(x).float(), sdpa.forward_features(x).float()
        top1_ours, top1_theirs = prepared.forward_head(ours).argmax(-1), sdpa.forward_head(theirs).argmax(-1)
    assert not torch.equal(ours, theirs)  # a different kernel did run
    assert F.cosine_similarity(ours, theirs).min() >= 0.9999
    assert torch.equal(top1_ours, top1_theirs)
    fp32_model, fp32_amp = prepare_model(model, precision="fp32")
    assert fp32_amp is None and not any(m.matmul_attention for m in _attention_modules(fp32_model))
    assert torch.equal(_features(fp32_model, x), fp32_before)


def test_combinations_that_do_not_exist(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ExportError, match=r"m\.onnx: bf16 runs as PyTorch autocast"):
        prepare_model(tmp_path / "m.onnx", runtime="onnxruntime", precision="bf16")
    with pytest.raises(ExportError, match=r"tiny_model: --runtime onnxruntime needs an exported \.onnx file"):
        prepare_model(tiny_model_dir, runtime="onnxruntime")
    with pytest.raises(ExportError, match=r"m\.onnx: an ONNX file runs with --runtime onnxruntime"):
        prepare_model(tmp_path / "m.onnx")
    with pytest.raises(ExportError, match=r"tiny_model: int8 runs with onnxruntime; export it first"):
        prepare_model(tiny_model_dir, precision="int8")
    with pytest.raises(ExportError, match=r"--precision bf16 and --amp fp16 disagree"):
        prepare_model(tiny_model_dir, precision="bf16", amp_dtype="fp16")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runtime", "onnxruntime"], "--runtime onnxruntime needs --model FILE.onnx"),
        (["--model", "{dir}", "--runtime", "onnxruntime"], "needs an exported .onnx file"),
        (["--model", "{missing}", "--runtime", "onnxruntime"], "missing.onnx: no such file"),
        (["--model", "{dir}", "--precision", "int8"], "int8 runs with onnxruntime; export it first"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    filled = [a.format(dir=tiny_model_dir, missing=tmp_path / "missing.onnx") for a in args]
    code = main(["predict", str(tmp_path / "v.mp4"), *filled])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]
