"""Hub repo ids resolve through the huggingface_hub cache (no network: an offline, pre-filled cache)."""

from __future__ import annotations

import pytest
import torch
from conftest import random_clip as video
from conftest import randomise
from conftest import tiny_config as tiny

import uniformerv2
from uniformerv2 import CheckpointError, DownloadError, UniFormerV2
from uniformerv2.weights import save_pretrained


def _fill_hub_cache(root, repo_id: str, model: UniFormerV2) -> None:
    """The on-disk layout huggingface_hub uses: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    save_pretrained(model, repo / "snapshots" / commit)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_load_model_from_hub_id(offline_hub) -> None:
    model = randomise(UniFormerV2(tiny())).eval()
    model.pretrained_cfg = {"labels": list("vwxyz"), "preprocess": uniformerv2.PreprocessConfig(num_frames=4)}
    _fill_hub_cache(offline_hub, "someone/uniformerv2-tiny", model)
    for name in ("someone/uniformerv2-tiny", "hf-hub:someone/uniformerv2-tiny"):
        loaded = uniformerv2.load_model(name)
        assert loaded.pretrained_cfg["labels"] == list("vwxyz")
        assert loaded.pretrained_cfg["preprocess"].num_frames == 4
        with torch.no_grad():
            assert torch.equal(loaded(video()), model(video()))


def test_hub_id_not_cached_offline_is_a_clear_error(offline_hub) -> None:
    with pytest.raises(DownloadError, match="someone/not-there: not in the Hugging Face cache"):
        uniformerv2.load_model("someone/not-there")


def test_hub_repo_in_another_layout_is_refused(offline_hub) -> None:
    model = UniFormerV2(tiny())
    _fill_hub_cache(offline_hub, "someone/other", model)
    snapshot = next((offline_hub / "models--someone--other" / "snapshots").iterdir())
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        uniformerv2.load_model("someone/other")


def test_push_to_hub_uploads_our_layout(monkeypatch) -> None:
    """push_to_hub creates the repo and uploads model.safetensors, config.json and a model card."""
    import huggingface_hub

    seen: dict = {}

    class FakeApi:
        def __init__(self, token=None) -> None:
            seen["token"] = token

        def create_repo(self, repo_id, private=False, exist_ok=False):
            seen["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            from pathlib import Path

            seen["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            seen["config"] = (Path(folder_path) / "config.json").read_text()
            return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    model = UniFormerV2(tiny())
    model.pretrained_cfg = {"labels": list("abcde")}
    url = uniformerv2.push_to_hub(model, "someone/tiny", private=True, token="t")
    assert url.endswith("/commit/abc")
    assert seen["repo"] == ("someone/tiny", True, True) and seen["token"] == "t"
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert '"id2label"' in seen["config"]


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a connection or resolve a name is recorded and fails."""
    import socket

    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def hub_cache_online_mode(tmp_path, monkeypatch):
    """A Hub cache with the library's own offline switches off (only UNIFORMERV2_OFFLINE decides)."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("UNIFORMERV2_OFFLINE", "1")
    return cache


def test_uniformerv2_offline_never_opens_a_connection(hub_cache_online_mode, no_network) -> None:
    model = randomise(UniFormerV2(tiny())).eval()
    model.pretrained_cfg = {"labels": list("vwxyz"), "preprocess": uniformerv2.PreprocessConfig(num_frames=4)}
    _fill_hub_cache(hub_cache_online_mode, "someone/cached", model)
    loaded = uniformerv2.load_model("someone/cached")
    with torch.no_grad():
        assert torch.equal(loaded(video()), model(video()))
    with pytest.raises(DownloadError, match="someone/absent: not in the Hugging Face cache"):
        uniformerv2.load_model("someone/absent")
    assert no_network == []


def test_from_pretrained_is_load_model_for_hub_names(offline_hub) -> None:
    model = randomise(UniFormerV2(tiny())).eval()
    model.pretrained_cfg = {"labels": list("vwxyz"), "preprocess": uniformerv2.PreprocessConfig(num_frames=4)}
    _fill_hub_cache(offline_hub, "someone/uniformerv2-tiny", model)
    loaded = uniformerv2.from_pretrained("someone/uniformerv2-tiny", labels=list("abcde"))
    assert loaded.pretrained_cfg["labels"] == list("abcde") and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(video()), model(video()))
