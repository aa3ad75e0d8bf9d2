"""Reading checkpoint files safely and loading them into a model, strictly."""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uniformerv2.errors import CheckpointError
from uniformerv2.weights.convert import (
    Format,
    StateDict,
    clip_to_ours,
    detect_format,
    to_ours,
    unwrap,
)
from uniformerv2.weights.unpickle import load_archive, module_tensors

_logger = logging.getLogger(__name__)


_VIDEO_SIGNATURES = (
    (4, b"ftyp", "an MP4/MOV video"),
    (0, b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    (0, b"FLV", "an FLV video"),
    (0, b"\x00\x00\x01\xba", "an MPEG video"),
    (0, b"\x00\x00\x00\x01", "an H.264/H.265 stream"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"\x1f\x8b", "a gzip file"),
    (0, b"%PDF", "a PDF document"),
)


def describe_file(path: Path) -> str:
    """What a file that is not a checkpoint looks like, in a few words (from its first bytes)."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head:
        return "an empty file"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI video"
    for offset, magic, what in _VIDEO_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return what
    text: str | None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[: exc.start].decode("utf-8") if exc.start > len(head) - 4 else None
    if text is not None and "\x00" not in text:
        return "a text file"
    return "unrecognised binary data"


def _is_safetensors(head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length followed by a JSON object."""
    return len(head) > 9 and int.from_bytes(head[:8], "little") < (1 << 28) and head[8:9] == b"{"


def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a checkpoint file, without running code from it (see :func:`read_checkpoint`)."""
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | Path) -> tuple[StateDict, dict[str, Any]]:
    """Tensors of a checkpoint file and its other top-level entries (``cfg``, ``config``, ``epoch``, ``meta``).

    Accepts ``.safetensors`` files, PyTorch zip archives (``torch.save`` files and TorchScript
    archives such as OpenAI's CLIP releases) read with a restricted unpickler that runs nothing
    (:mod:`uniformerv2.weights.unpickle`), legacy ``torch.save`` files read with
    ``weights_only=True``, and our model directories. The tensors are taken from a flat dict,
    ``{"model_state": ...}``, ``{"state_dict": ...}`` or ``{"model": ...}``.

    Raises:
        CheckpointError: missing or unreadable file, not a checkpoint, or a pickle that needs
            arbitrary code; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if path.suffix == ".safetensors" or _is_safetensors(head):
        return _read_safetensors(path), {}
    if head[:4] == b"PK\x03\x04":
        obj, torchscript = load_archive(path)
        if torchscript:
            return dict(module_tensors(obj)), {}
    elif head[:1] == b"\x80":
        obj = _torch_load_legacy(path)
    else:
        raise CheckpointError(f"{path}: not a checkpoint ({describe_file(path)})")
    extras: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        extras = {k: v for k, v in obj.items() if k == "meta" or not isinstance(v, (Mapping, torch.Tensor))}
    return unwrap(obj, source=str(path)), extras


def _read_safetensors(path: Path) -> StateDict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a valid safetensors file ({_first_line(exc)})") from None


def _torch_load_legacy(path: Path) -> Any:
    """A pre-zip ``torch.save`` file (or a bare pickle) through ``torch.load(weights_only=True)``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
        reason = reason.splitlines()[0] if reason else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused, the file needs arbitrary unpickling to load ({reason}); nothing in it was run - "
            "re-save its state dict or convert it to safetensors on a machine where you trust it"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return text.splitlines()[0] if text else f"{type(exc).__name__}: file empty or cut short"


def official_cfg_kwargs(extras: Mapping[str, Any]) -> dict[str, Any]:
    """Architecture kwargs stored in an official training checkpoint's ``cfg`` entry, if readable.

    The official trainer stores its YAML config (``UNIFORMERV2.*`` keys); a JSON string of
    ``VisionTransformer`` kwargs is accepted too. Returns ``{}`` when there is nothing usable.
    """
    text = extras.get("cfg")
    if not isinstance(text, str):
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml  # optional: only needed for YAML configs of official training runs
        except ImportError:
            return {}
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return {}
        section = data.get("UNIFORMERV2", {}) if isinstance(data, dict) else {}
        data = {k.lower(): v for k, v in section.items()}
    return data if isinstance(data, dict) else {}


@dataclass
class LoadReport:
    """What :func:`load_weights` did."""

    source_format: Format
    missing: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)


def _mismatch_message(source: str, missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    parts = []
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            parts.append(f"{title} ({len(keys)}): {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}")
    return f"{source}: checkpoint does not fit the model - " + "; ".join(parts)


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    fmt: Format | None = None,
    name: str | None = None,
) -> LoadReport:
    """Load official, MMAction2, CLIP or our weights into ``model``; the format is detected.

    Strict by default: every model key must be present with the right shape and no checkpoint
    key may be left over. Two deliberate exceptions, each logged: a classifier with a different
    number of classes than the model is left at its fresh initialisation, and a CLIP checkpoint
    initialises the backbone only (the added UniFormerV2 modules keep their official
    zero/identity initialisation).

    Args:
        model: the model to fill.
        source: a checkpoint path or a state dict.
        strict: refuse missing, unexpected and shape-mismatched keys.
        fmt: the source layout; detected when omitted.
        name: how error messages refer to the source (default: the path).

    Raises:
        CheckpointError: a format problem or any key/shape mismatch (all listed).
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "state dict")
    raw = read_state_dict(source) if isinstance(source, (str, Path)) else dict(source)
    fmt = fmt or detect_format(raw)
    own = model.state_dict()
    if fmt == "clip":
        sd = clip_to_ours(raw, stem_kernel_t=own["conv1.weight"].shape[2])
    else:
        sd = to_ours(raw, fmt, source=name)
    report = LoadReport(fmt)
    head = [
        k
        for k in ("head.fc.weight", "head.fc.bias")
        if k in sd and k in own and sd[k].shape[0] != own[k].shape[0] and sd[k].shape[1:] == own[k].shape[1:]
    ]
    if head:
        _logger.warning(
            "%s: classifier has %d classes, model %d: head re-initialised",
            name,
            sd[head[0]].shape[0],
            own[head[0]].shape[0],
        )
        report.reinitialised = head
        sd = {k: v for k, v in sd.items() if k not in head}
    missing = [k for k in own if k not in sd and k not in head]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in sd if k in own and sd[k].shape != own[k].shape
    ]
    if fmt == "clip":
        report.missing = missing
        missing = []
    if strict and (missing or unexpected or shapes):
        raise CheckpointError(_mismatch_message(name, missing, unexpected, shapes))
    if not strict:
        sd = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
        report.missing = sorted(set(report.missing) | {k for k in own if k not in sd and k not in head})
    model.load_state_dict(sd, strict=False)
    return report
