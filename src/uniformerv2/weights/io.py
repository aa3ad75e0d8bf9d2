"""Reading checkpoint files safely and loading them into a model, strictly."""

from __future__ import annotations

import logging
import pickle
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uniformerv2.errors import CheckpointError, printable, special_file_problem
from uniformerv2.weights.convert import (
    Format,
    StateDict,
    convert_to_ours,
    detect_format,
    inflate_conv,
    permute_head,
    unwrap,
)
from uniformerv2.weights.unpickle import dangerous_global, load_archive, module_tensors

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
    problem = special_file_problem(path)
    if problem:
        raise CheckpointError(f"{printable(path)}: {problem}")
    if not path.is_file():
        raise CheckpointError(f"{printable(path)}: no such checkpoint file")
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
        with warnings.catch_warnings():  # torch warns about pickle protocols it may not read
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        call = dangerous_global(path.read_bytes())
        if call is None:  # torch's message advises weights_only=False: never pass that on
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
            reason = detail[1].strip() if detail else "not a state dict of tensors"
            raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
        reason = f"the pickle calls {call}"
        raise CheckpointError(
            f"{path}: refused, the file needs arbitrary unpickling to load ({reason}); nothing in it was run - "
            "re-save its state dict or convert it to safetensors on a machine where you trust it"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return text.splitlines()[0] if text else f"{type(exc).__name__}: file empty or cut short"


def load_checkpoint(path: str | Path) -> tuple[StateDict, Format, dict[str, Any]]:
    """Read a checkpoint file, detect its layout and convert it to ours: the one loading pipeline.

    Returns:
        ``(state_dict, format, extras)``: the tensors in our layout (a CLIP encoder's backbone keys
        with a one-frame stem), the file's layout (``"ours"``, ``"official"``, ``"mmaction2"`` or
        ``"clip"``) and its other top-level entries (``cfg``, ``config``, ``meta``, ``epoch``), which
        :func:`uniformerv2.weights.stored.describe_checkpoint` reads.

    Raises:
        CheckpointError: unreadable, unsafe or unrecognised file; the message names it.
    """
    raw, extras = read_checkpoint(path)
    fmt = detect_format(raw, source=str(path))
    return convert_to_ours(raw, fmt, source=str(path)), fmt, extras


# ------------------------------------------------------------------------------------------------
# head policies: filters applied to a state dict in our layout before it is loaded

#: ``filter(state_dict, model_state_dict, source_name) -> state_dict``; a head key it removes keeps the
#: model's fresh initialisation and is reported as re-initialised.
HeadFilter = Callable[[StateDict, StateDict, str], StateDict]
HEAD_KEYS = ("head.fc.weight", "head.fc.bias")


def _rows(sd: Mapping[str, torch.Tensor]) -> int:
    return int(sd[HEAD_KEYS[0]].shape[0])


def _has_head(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> bool:
    return all(k in sd and k in own for k in HEAD_KEYS)


def _without_head(sd: StateDict) -> StateDict:
    return {k: v for k, v in sd.items() if k not in HEAD_KEYS}


def resize_head(sd: StateDict, own: StateDict, name: str) -> StateDict:
    """A classifier with another class count than the model's is dropped (re-initialised), with a warning."""
    if _has_head(sd, own) and _rows(sd) != _rows(own) and sd[HEAD_KEYS[0]].shape[1:] == own[HEAD_KEYS[0]].shape[1:]:
        _logger.warning("%s: classifier has %d classes, model %d: head re-initialised", name, _rows(sd), _rows(own))
        return _without_head(sd)
    return sd


def reinit_head(sd: StateDict, own: StateDict, name: str) -> StateDict:
    """The classifier always starts fresh (official ``DELETE_SPECIAL_HEAD=True``)."""
    if _has_head(sd, own):
        _logger.info("%s: classifier (%d classes) re-initialised for %d classes", name, _rows(sd), _rows(own))
        return _without_head(sd)
    return sd


def keep_head(sd: StateDict, own: StateDict, name: str) -> StateDict:
    """The classifier is loaded as it is; its class count must be the model's."""
    if _has_head(sd, own) and _rows(sd) != _rows(own):
        raise CheckpointError(f"{name}: head='keep' but the classifier has {_rows(sd)} classes, the model {_rows(own)}")
    return sd


def map_head(order: Sequence[int], label_map: str = "label map") -> HeadFilter:
    """Row k of the new classifier is row ``order[k]`` of the checkpoint's (official ``label_mixto*.json``)."""

    def apply(sd: StateDict, own: StateDict, name: str) -> StateDict:
        if not _has_head(sd, own):
            return sd
        if len(order) != _rows(own):
            raise CheckpointError(f"label map {label_map!r} has {len(order)} entries for a {_rows(own)}-class model")
        _logger.info(
            "%s: classifier rows gathered from %d to %d classes through %s", name, _rows(sd), len(order), label_map
        )
        return permute_head(sd, order)

    return apply


# ------------------------------------------------------------------------------------------------
# loading into a model


@dataclass
class LoadReport:
    """What :func:`load_weights` did."""

    source_format: Format
    missing: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)


def _listed(keys: Sequence[str], limit: int = 6) -> str:
    return ", ".join(keys[:limit]) + (" ..." if len(keys) > limit else "")


def _mismatch_message(source: str, missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    parts = []
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if keys:
            parts.append(f"{title} ({len(keys)}): {_listed(keys)}")
    return f"{source}: checkpoint does not fit the model - " + "; ".join(parts)


def check_values(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], name: str) -> None:
    """Refuse integer tensors where the model has floating-point ones, and NaN/inf values.

    Raises:
        CheckpointError: naming the file and the tensors.
    """
    kinds = [
        f"{k} ({str(v.dtype).removeprefix('torch.')})"
        for k, v in sd.items()
        if k in own and v.is_floating_point() != own[k].is_floating_point()
    ]
    if kinds:
        raise CheckpointError(
            f"{name}: {len(kinds)} tensors have another kind of dtype than the model's "
            f"(integer vs floating point): {_listed(kinds)}"
        )
    bad = [k for k, v in sd.items() if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{name}: non-finite values (NaN or inf) in {len(bad)} tensors: {_listed(bad)}")


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    fmt: Format | None = None,
    name: str | None = None,
    filters: Sequence[HeadFilter] = (resize_head,),
) -> LoadReport:
    """Load official, MMAction2, CLIP or our weights into ``model``; the format is detected.

    Strict by default: every model key must be present with the right shape and no checkpoint
    key may be left over. Two deliberate exceptions: what the head ``filters`` drop keeps its fresh
    initialisation (by default :func:`resize_head`: a classifier with another class count, logged),
    and a CLIP checkpoint initialises the backbone only (the added UniFormerV2 modules keep their
    official zero/identity initialisation; its 2-D patch kernel is inflated into the centre of the
    model's temporal stem). Integer tensors where the model has floating-point ones and NaN/inf
    values are refused.

    Args:
        model: the model to fill.
        source: a checkpoint path (read by :func:`load_checkpoint`) or a state dict.
        strict: refuse missing, unexpected and shape-mismatched keys.
        fmt: the layout of a state dict ``source``; detected when omitted.
        name: how error messages refer to the source (default: the path).
        filters: head policies (:func:`resize_head`, :func:`reinit_head`, :func:`keep_head`,
            :func:`map_head`), applied in order; ``()`` loads the classifier strictly.

    Raises:
        CheckpointError: a format problem, bad values, or any key/shape mismatch (all listed).
    """
    if isinstance(source, (str, Path)):
        name = name or str(source)
        sd, fmt, _ = load_checkpoint(source)
    else:
        name = name or "state dict"
        raw = dict(source)
        fmt = fmt or detect_format(raw, source=name)
        sd = convert_to_ours(raw, fmt, source=name)
    return _load_ours(model, sd, fmt, name, strict, filters)


def _load_ours(
    model: nn.Module, sd: StateDict, fmt: Format, name: str, strict: bool, filters: Sequence[HeadFilter]
) -> LoadReport:
    own = model.state_dict()
    if fmt == "clip" and "conv1.weight" in sd and "conv1.weight" in own:
        sd["conv1.weight"] = inflate_conv(sd["conv1.weight"], own["conv1.weight"].shape[2])
    before = set(sd)
    for keep in filters:
        sd = keep(sd, own, name)
    report = LoadReport(fmt, reinitialised=[k for k in HEAD_KEYS if k in before and k not in sd and k in own])
    missing = [k for k in own if k not in sd and k not in report.reinitialised]
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
        report.missing = sorted(set(report.missing) | {k for k in own if k not in sd and k not in report.reinitialised})
    check_values(sd, own, name)
    model.load_state_dict(sd, strict=False)
    return report
