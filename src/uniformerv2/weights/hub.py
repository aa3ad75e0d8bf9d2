"""Our own format in the Hugging Face layout: ``model.safetensors`` + ``config.json`` + model card.

``config.json`` holds the architecture (``architecture``), the label names (``id2label`` /
``label2id`` with string keys, as transformers writes them), ``num_frames`` and the
preprocessing (``preprocess``), so a directory or Hub repo is self-describing.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from uniformerv2.atomic import atomic_write
from uniformerv2.config import UniFormerV2Config, check_field_types
from uniformerv2.errors import CheckpointError
from uniformerv2.model.uniformerv2 import UniFormerV2
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.weights.io import load_checkpoint, load_weights

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


def _write_text(path: str, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")


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
    atomic_write(out / CONFIG_NAME, lambda tmp: _write_text(tmp, text))
    if not (out / "README.md").exists():
        card = _model_card(config)
        atomic_write(out / "README.md", lambda tmp: _write_text(tmp, card))
    return out


#: Top-level ``config.json`` fields and their JSON types.
_CONFIG_FIELDS: dict[str, type] = {
    "model_type": str,
    "architectures": list,
    "format_version": int,
    "architecture": dict,
    "num_classes": int,
    "id2label": dict,
    "label2id": dict,
    "num_frames": int,
    "image_size": int,
    "preprocess": dict,
    "source": str,
}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; a model directory needs {CONFIG_NAME} and {WEIGHTS_NAME}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from None


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and validate ``config.json`` of a model directory (see :func:`validate_config`)."""
    path = Path(directory) / CONFIG_NAME
    config = _read_json(path)
    validate_config(config, path)
    return config


def validate_config(config: Any, path: str | os.PathLike[str]) -> tuple[UniFormerV2Config, PreprocessConfig, list[str]]:
    """Check ``config.json`` as a schema and return its architecture, preprocessing and labels.

    The file must be an object with ``model_type: "uniformerv2"`` and an ``architecture`` object;
    every field has its JSON type, no field is unknown, ``id2label`` numbers 0..N-1 without gaps
    and names exactly one label per class.

    Raises:
        CheckpointError: ``<path>: field '<name>': <cause>`` for the first problem found.
    """

    def fail(cause: str) -> CheckpointError:
        return CheckpointError(f"{path}: {cause}")

    if not isinstance(config, dict):
        raise fail(f"expected a JSON object, got {type(config).__name__ if config is not None else 'null'}")
    for key, value in config.items():
        if key not in _CONFIG_FIELDS:
            raise fail(f"field {key!r}: unknown (known: {', '.join(_CONFIG_FIELDS)})")
        if not isinstance(value, _CONFIG_FIELDS[key]) or isinstance(value, bool):
            raise fail(f"field {key!r}: expected {_CONFIG_FIELDS[key].__name__}, got {json.dumps(value)[:60]}")
    if config.get("model_type") != "uniformerv2" or "architecture" not in config:
        raise fail("not a uniformerv2 config (field 'model_type'/'architecture' missing)")
    for section, cls in (("architecture", UniFormerV2Config), ("preprocess", PreprocessConfig)):
        try:
            check_field_types(cls, config.get(section, {}), section)
        except ValueError as exc:
            raise fail(str(exc)) from None
    try:
        arch = UniFormerV2Config.from_dict(config["architecture"])
    except (TypeError, ValueError) as exc:
        raise fail(f"field 'architecture': {exc}") from None
    try:
        preprocess = PreprocessConfig.from_dict(config.get("preprocess", {}))
    except (TypeError, ValueError) as exc:
        raise fail(f"field 'preprocess': {exc}") from None
    if config.get("num_classes", arch.num_classes) != arch.num_classes:
        raise fail(f"field 'num_classes': {config['num_classes']} but architecture.num_classes is {arch.num_classes}")
    return arch, preprocess, _labels(config, arch.num_classes, fail)


def _labels(config: dict[str, Any], classes: int, fail: Any) -> list[str]:
    id2label = config.get("id2label")
    if id2label is None:
        raise fail(f"field 'id2label' missing: {classes} class names are needed")
    for key, name in id2label.items():
        if not isinstance(name, str):
            raise fail(f"field 'id2label.{key}': expected a string, got {json.dumps(name)[:60]}")
    missing = [i for i in range(classes) if str(i) not in id2label]
    extra = sorted(set(id2label) - {str(i) for i in range(classes)})
    if missing or extra:
        what = f"no entry for class {missing[0]}" if missing else f"entry {extra[0]!r} is not a class index"
        raise fail(f"field 'id2label': {what} ({len(id2label)} labels for {classes} classes, keys 0..{classes - 1})")
    return [id2label[str(i)] for i in range(classes)]


def from_pretrained(directory: str | os.PathLike[str]) -> UniFormerV2:
    """Build and strictly load a model saved by :func:`save_pretrained`: a local directory, or a
    Hugging Face Hub repo id in our layout (downloaded through :func:`download_from_hub`).

    Loading is strict, classifier included: weights that do not match ``config.json`` are an error.
    """
    local = Path(directory)
    if not local.is_dir() and re.fullmatch(r"(hf-hub:)?[\w.-]+/[\w.-]+", str(directory)):
        local = download_from_hub(str(directory).removeprefix("hf-hub:"))
        if not (local / WEIGHTS_NAME).is_file():
            raise CheckpointError(f"{directory}: the Hub repo has no {WEIGHTS_NAME} in the uniformerv2 layout")
    arch, preprocess, labels = validate_config(_read_json(local / CONFIG_NAME), local / CONFIG_NAME)
    weights = local / WEIGHTS_NAME
    sd, fmt, _ = load_checkpoint(weights)
    head = sd.get("head.fc.weight")
    if head is not None and head.shape[0] != arch.num_classes:
        raise CheckpointError(
            f"{weights}: classifier head.fc.weight has {head.shape[0]} classes but {CONFIG_NAME} says "
            f"num_classes={arch.num_classes}"
        )
    model = UniFormerV2(arch)
    load_weights(model, sd, fmt=fmt, name=str(weights), filters=())
    model.pretrained_cfg = {"labels": labels, "preprocess": preprocess, "source": str(directory)}
    return model.eval()


def download_from_hub(repo_id: str, *, revision: str | None = None) -> Path:
    """Local snapshot of a Hub repository in our layout (:func:`uniformerv2.zoo.download.download_snapshot`)."""
    from uniformerv2.zoo.download import download_snapshot

    return download_snapshot(repo_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "README.md"])


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
