"""Our own format in the Hugging Face layout: ``model.safetensors`` + ``config.json`` + model card.

``config.json`` holds the architecture (``architecture``), the label names (``id2label`` /
``label2id`` with string keys, as transformers writes them), ``num_frames`` and the
preprocessing (``preprocess``), so a directory or Hub repo is self-describing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from uniformerv2.atomic import atomic_write
from uniformerv2.config import UniFormerV2Config
from uniformerv2.errors import CheckpointError, DownloadError
from uniformerv2.model.uniformerv2 import UniFormerV2
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.weights.io import load_weights

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def model_config_dict(model: UniFormerV2) -> dict[str, Any]:
    """The ``config.json`` content for ``model`` (labels and preprocessing from ``model.pretrained_cfg``)."""
    cfg = model.config
    labels = model.pretrained_cfg.get("labels") or [f"LABEL_{i}" for i in range(cfg.num_classes)]
    if len(labels) != cfg.num_classes:
        raise ValueError(f"{len(labels)} label names for a {cfg.num_classes}-class head")
    preprocess = model.pretrained_cfg.get("preprocess") or PreprocessConfig()
    return {
        "model_type": "uniformerv2",
        "architectures": ["UniFormerV2"],
        "format_version": FORMAT_VERSION,
        "architecture": cfg.to_dict(),
        "num_classes": cfg.num_classes,
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label2id": {name: i for i, name in enumerate(labels)},
        "num_frames": preprocess.num_frames,
        "image_size": preprocess.crop_size,
        "preprocess": preprocess.to_dict(),
        "source": model.pretrained_cfg.get("source", ""),
    }


def _model_card(config: dict[str, Any]) -> str:
    arch = config["architecture"]
    return (
        "---\nlibrary_name: uniformerv2\npipeline_tag: video-classification\ntags:\n- uniformerv2\n- video\n---\n\n"
        f"# UniFormerV2\n\nA UniFormerV2 video classifier ({arch['width']} wide, {arch['layers']} blocks, "
        f"patch {arch['patch_size']}, {config['num_classes']} classes, {config['num_frames']} frames at "
        f'{config["image_size"]}px).\n\n```python\nimport uniformerv2\nmodel = uniformerv2.load_model("<this repo>")\n'
        'print(uniformerv2.predict("video.mp4", model=model))\n```\n'
    )


def save_pretrained(model: UniFormerV2, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.safetensors``, ``config.json`` and a ``README.md`` model card to ``directory``.

    Each file is written to a temporary name and renamed, so an interrupted save never leaves a
    truncated file behind.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = model_config_dict(model)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    text = json.dumps(config, indent=2, ensure_ascii=False)
    atomic_write(out / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    if not (out / "README.md").exists():
        card = _model_card(config)
        atomic_write(out / "README.md", lambda tmp: Path(tmp).write_text(card, encoding="utf-8"))
    return out


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``config.json`` of a model directory."""
    path = Path(directory) / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; a model directory needs {CONFIG_NAME} and {WEIGHTS_NAME}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from None
    if config.get("model_type") != "uniformerv2" or "architecture" not in config:
        raise CheckpointError(f"{path}: not a uniformerv2 config (model_type/architecture missing)")
    return config


def from_pretrained(directory: str | os.PathLike[str]) -> UniFormerV2:
    """Build and strictly load a model saved by :func:`save_pretrained` (a local directory)."""
    config = read_config(directory)
    model = UniFormerV2(UniFormerV2Config.from_dict(config["architecture"]))
    load_weights(model, Path(directory) / WEIGHTS_NAME)
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    model.pretrained_cfg = {
        "labels": labels,
        "preprocess": PreprocessConfig.from_dict(config.get("preprocess", {})),
        "source": str(directory),
    }
    return model.eval()


def download_from_hub(repo_id: str, *, revision: str | None = None) -> Path:
    """Local snapshot of a Hub repository in our layout (``huggingface_hub`` cache and offline rules)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "README.md"])
    except LocalEntryNotFoundError:
        raise DownloadError(
            f"{repo_id}: not in the Hugging Face cache and the Hub cannot be reached (offline or no network)"
        ) from None
    except HfHubHTTPError as exc:
        raise DownloadError(f"{repo_id}: {str(exc).splitlines()[0]}") from None
    return Path(path)


def push_to_hub(model: UniFormerV2, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Save ``model`` in our layout and upload it to a Hub repository; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message="Upload UniFormerV2")
    return str(info)


__all__ = ["from_pretrained", "push_to_hub", "read_config", "save_pretrained", "download_from_hub"]
