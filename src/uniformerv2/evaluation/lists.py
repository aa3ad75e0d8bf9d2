"""Evaluation lists and their class labels: read ``path,label`` lists, map labels to head rows.

A list has one video per line, in the layouts training reads (official ``kinetics_sparse`` and
``sth`` annotation files):

- ``path<SEP>label``: a video file (or frame folder); ``SEP`` is ``,`` when the line has one,
  otherwise any whitespace (or the ``separator`` given);
- ``frame_dir num_frames label``: SSv1/SSv2 frame folders (whitespace-separated).

A label is a class index or a class name. Names are matched to the checkpoint's head by name
(case, ``_`` and ``[]`` ignored), so a list in any class order is scored against the right head
rows; the Kinetics renamings between the K400 and K700 wordings ("balloon blowing" is
"inflating balloons" in the official heads) are taken from the shipped K710 head maps. Indices
are head rows, unless the names of the list's indices are given (``list_labels``), which maps
them by name as well and so detects a list in another class order than the head (for example an
alphabetical Kinetics-400 list against an official-order head). Indices without names cannot be
checked; :func:`read_eval_list` says so in its notes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from uniformerv2.errors import UniFormerV2Error
from uniformerv2.video.inputs import VIDEO_EXTENSIONS, read_list_text
from uniformerv2.zoo import list_label_sets, load_label_map, load_labels

__all__ = [
    "EvalItem",
    "EvalList",
    "LabelError",
    "LabelResolver",
    "identify_label_set",
    "read_eval_list",
    "resolve_list_labels",
]

ListFormat = Literal["auto", "video", "frames"]

_HEADER_LABELS = {"label", "labels", "class", "class_name", "classname", "category"}
_FRAMES_LINE = re.compile(r"(?P<path>\S+)\s+(?P<frames>\d+)\s+(?P<label>\S.*)")
_INT = re.compile(r"[+-]?\d+")


class LabelError(UniFormerV2Error, ValueError):
    """An evaluation list or label file that cannot be used; the message names the file and lines."""


@dataclass(frozen=True)
class EvalItem:
    """One video of an evaluation list.

    Attributes:
        video: path of the video file or frame folder.
        label: head row (class index of the checkpoint) of its true class.
        where: ``file:line`` of the entry.
    """

    video: str
    label: int
    where: str


@dataclass
class EvalList:
    """A parsed evaluation list.

    Attributes:
        items: the videos and their head rows, in list order.
        kind: ``"indices"``, ``"names"`` or ``"mixed"``: how the list gives its labels.
        order: how list labels became head rows, in words (printed with the protocol).
        notes: warnings, e.g. that index labels could not be checked against the head.
        checked: every label was matched to the head by name.
    """

    items: list[EvalItem]
    kind: str
    order: str
    notes: list[str] = field(default_factory=list)
    checked: bool = False


def _norm(name: str) -> str:
    """Name key for matching: case-folded, ``_`` as space, ``[]`` dropped, whitespace collapsed."""
    return " ".join(name.replace("_", " ").replace("[", "").replace("]", "").casefold().split())


@cache
def _alias_groups() -> dict[str, frozenset[str]]:
    """Normalised class name -> every wording of that class in the shipped Kinetics lists.

    Row k of an alphabetical K400/K600/K700 list is row ``map[k]`` of the official K710 head
    (``load_label_map``), whose names use the K700 wording; where the two names differ they are
    two wordings of one class.
    """
    official = load_labels("kinetics710_official")
    groups: dict[str, set[str]] = {}
    for target in ("kinetics400_alphabetical", "kinetics600_alphabetical", "kinetics700_alphabetical"):
        names = load_labels(target)
        for k, row in enumerate(load_label_map("kinetics710_official", target)):
            a, b = _norm(names[k]), _norm(official[row])
            if a != b:
                merged = groups.get(a, {a}) | groups.get(b, {b})
                for key in merged:
                    groups[key] = merged
    return {key: frozenset(value) for key, value in groups.items()}


class LabelResolver:
    """Maps class names to the rows of a head whose class names are ``head_labels``.

    An exact (normalised) match wins; otherwise another wording of the same Kinetics class is
    tried. A name that matches no row, or several, resolves to None.
    """

    def __init__(self, head_labels: Sequence[str]) -> None:
        self.head_labels = list(head_labels)
        self._rows: dict[str, list[int]] = {}
        for row, name in enumerate(self.head_labels):
            self._rows.setdefault(_norm(name), []).append(row)

    def __call__(self, name: str) -> int | None:
        key = _norm(name)
        rows = self._rows.get(key)
        if rows is None:
            found = {r for alias in _alias_groups().get(key, ()) for r in self._rows.get(alias, ())}
            rows = sorted(found)
        return rows[0] if len(rows) == 1 else None


def identify_label_set(labels: Sequence[str]) -> str | None:
    """The shipped label set (``uniformerv2.zoo.load_labels``) with exactly these names in this order."""
    keys = [_norm(n) for n in labels]
    for name in list_label_sets():
        shipped = load_labels(name)
        if len(shipped) == len(keys) and [_norm(n) for n in shipped] == keys:
            return name
    return None


def has_names(labels: Sequence[str]) -> bool:
    """False for the placeholder names ``LABEL_<i>`` of a checkpoint that carries no class names."""
    return not all(re.fullmatch(r"LABEL_\d+", n) for n in labels)


def resolve_list_labels(list_labels: Sequence[str], head_labels: Sequence[str], source: str) -> list[int]:
    """Head row of each class of a list's label file (entry i names list index i).

    Raises:
        LabelError: names that match no head row (listed, up to 10).
    """
    resolve = LabelResolver(head_labels)
    rows = [resolve(n) for n in list_labels]
    missing = [f"{i}: {n!r}" for i, (n, r) in enumerate(zip(list_labels, rows, strict=True)) if r is None]
    if missing:
        raise LabelError(
            f"{source}: {len(missing)} of {len(list_labels)} class names are not among the checkpoint's "
            f"{len(head_labels)} classes: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
        )
    return [r for r in rows if r is not None]


def _detect_format(line: str) -> str:
    match = _FRAMES_LINE.fullmatch(line)
    if "," not in line and match and not match["path"].lower().endswith(VIDEO_EXTENSIONS):
        return "frames"
    return "video"


def _candidates(line: str, fmt: str, separator: str | None) -> list[tuple[str, str]]:
    """Every (path, label) split of a line, rightmost split first (labels may contain the separator)."""
    if fmt == "frames":
        pieces = line.split()
        out = []
        for cut in range(len(pieces) - 1, 1, -1):
            if _INT.fullmatch(pieces[cut - 1]):
                out.append((" ".join(pieces[: cut - 1]), " ".join(pieces[cut:])))
        return out
    sep = separator or ("," if "," in line else None)
    if sep is None or sep == " ":
        spans = [m.start() for m in re.finditer(r"\s+", line)]
        ends = [m.end() for m in re.finditer(r"\s+", line)]
    else:
        spans = [m.start() for m in re.finditer(re.escape(sep), line)]
        ends = [s + len(sep) for s in spans]
    return [(line[:s].strip(), line[e:].strip()) for s, e in zip(reversed(spans), reversed(ends), strict=True)]


def _resolve_path(path: str, root: str | None, base: Path) -> str:
    if os.path.isabs(path):
        return path
    return os.path.join(root, path) if root is not None else str(base / path)


@dataclass
class _Parsed:
    video: str
    label: int  # the index as written, or for a class name its head row
    named: bool
    where: str


def _parse_lines(
    path: Path, fmt: ListFormat, separator: str | None, root: str | None, resolve: LabelResolver
) -> tuple[list[_Parsed], list[str]]:
    """(entries, problems) of a list file; labels stay as written (int index or name)."""
    entries: list[_Parsed] = []
    problems: list[str] = []
    numbered = enumerate(read_list_text(path).splitlines(), 1)
    lines = [(n, raw.strip()) for n, raw in numbered if raw.strip() and not raw.lstrip().startswith("#")]
    for position, (number, text) in enumerate(lines):
        where = f"{os.fspath(path)}:{number}"
        line_fmt = _detect_format(text) if fmt == "auto" else fmt
        splits = _candidates(text, line_fmt, separator)
        if position == 0 and splits and splits[0][1].casefold() in _HEADER_LABELS:
            continue
        chosen = _choose(splits, resolve)
        if chosen is None:
            problems.append(f"{where}: {_why(splits, resolve)}: {text!r}")
            continue
        video, label, named = chosen
        entries.append(_Parsed(_resolve_path(video, root, path.parent), label, named, where))
    return entries, problems


def _choose(splits: list[tuple[str, str]], resolve: LabelResolver) -> tuple[str, int, bool] | None:
    """The first split whose label is an index, or a class name of the head: (path, index or row, named)."""
    for video, label in splits:
        if not video:
            continue
        if _INT.fullmatch(label):
            return video, int(label), False
        row = resolve(label)
        if row is not None:
            return video, row, True
    return None


def _why(splits: list[tuple[str, str]], resolve: LabelResolver) -> str:
    if not splits or not splits[0][0]:
        return "expected path<SEP>label or frame_dir num_frames label"
    if not has_names(resolve.head_labels):
        return f"class name {splits[0][1]!r} cannot be matched: the checkpoint carries no class names (pass labels)"
    return f"class name {splits[0][1]!r} is not among the checkpoint's {len(resolve.head_labels)} classes"


def _problems_message(problems: list[str]) -> str:
    """The first problem on the first line (what a command line shows), then the others (up to 20)."""
    if len(problems) == 1:
        return problems[0]
    shown = "\n  ".join(problems[1:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return f"{problems[0]} (and {len(problems) - 1} more bad line(s):)\n  {shown}{more}"


def read_eval_list(
    path: str | os.PathLike[str],
    head_labels: Sequence[str],
    *,
    list_labels: Sequence[str] | None = None,
    list_labels_name: str = "labels",
    root: str | None = None,
    fmt: ListFormat = "auto",
    separator: str | None = None,
) -> EvalList:
    """Read an evaluation list and map every label to a head row.

    Args:
        path: the list file. Blank lines and ``#`` comments are skipped; a first line whose
            label field is ``label``/``class`` is a header.
        head_labels: the checkpoint's class names in head order (``LABEL_<i>`` when it has none).
        list_labels: class names of the list's label indices (entry i names index i), e.g.
            the data set's label file; indices are then mapped to head rows by name.
        list_labels_name: how ``list_labels`` is named in messages (its file or label-set name).
        root: folder joined to relative paths (training's ``data.root``); None: the list's folder.
        fmt: ``"video"`` (``path<SEP>label``), ``"frames"`` (``dir num_frames label``) or
            ``"auto"`` (frames when a line reads ``name int label`` without a video suffix).
        separator: field separator of ``video`` lines; None: ``,`` if the line has one, else whitespace.

    Returns:
        An :class:`EvalList`.

    Raises:
        LabelError: every bad line (up to 20) as ``file:line: reason``, the first on the first line.
        InputError: the list is missing, unreadable or not UTF-8 text.
    """
    path = Path(path)
    assumed = list_labels is not None and not has_names(head_labels)
    if list_labels is not None and assumed:  # a head without names takes the list's names (cannot be checked)
        head_labels = list(list_labels)
    resolve = LabelResolver(head_labels)
    entries, problems = _parse_lines(path, fmt, separator, root, resolve)
    index_rows = None
    if list_labels is not None and not assumed:
        index_rows = resolve_list_labels(list_labels, head_labels, list_labels_name)
    items: list[EvalItem] = []
    limit = len(list_labels) if list_labels is not None else len(head_labels)
    for entry in entries:
        if entry.named:
            items.append(EvalItem(entry.video, entry.label, entry.where))
        elif not 0 <= entry.label < limit:
            problems.append(f"{entry.where}: label {entry.label} is outside [0, {limit})")
        else:
            row = index_rows[entry.label] if index_rows is not None else entry.label
            items.append(EvalItem(entry.video, row, entry.where))
    if problems:
        raise LabelError(_problems_message(problems))
    if not items:
        raise LabelError(f"{os.fspath(path)}: no entries")
    described = _describe(items, entries, head_labels, list_labels, list_labels_name, index_rows, path)
    if assumed:
        described.checked = False
        described.order = f"{described.kind} in the order of {list_labels_name} (the checkpoint has no class names)"
    return described


def _describe(
    items: list[EvalItem],
    entries: list[_Parsed],
    head_labels: Sequence[str],
    list_labels: Sequence[str] | None,
    list_labels_name: str,
    index_rows: list[int] | None,
    path: Path,
) -> EvalList:
    """How the list's labels were turned into head rows, and what could not be checked."""
    names = sum(e.named for e in entries)
    kind = "names" if names == len(entries) else "indices" if names == 0 else "mixed"
    head_set = identify_label_set(head_labels) or f"{len(head_labels)} classes"
    notes: list[str] = []
    if kind == "names":
        return EvalList(items, kind, f"class names, matched to the head ({head_set}) by name", notes, True)
    if index_rows is not None:
        same = index_rows == list(range(len(index_rows)))
        order = identify_label_set(list_labels or []) or list_labels_name
        how = "same order as the head" if same else f"differs from the head's {head_set} order; remapped by name"
        return EvalList(items, kind, f"indices named by {order} ({how})", notes, True)
    order = f"indices taken as head rows ({head_set}), unchecked"
    if not has_names(head_labels):
        notes.append(
            f"{os.fspath(path)}: the checkpoint carries no class names, so the order of the list's class "
            "indices cannot be checked against its head; pass its class names (--labels) to name the classes"
        )
    elif list_labels is None:
        notes.append(
            f"{os.fspath(path)}: labels are class indices, so their order cannot be checked against the "
            f"checkpoint's head ({head_set}, first classes: {', '.join(repr(n) for n in head_labels[:3])}); "
            "pass the list's label file (--labels) to check it"
        )
    return EvalList(items, kind, order, notes, False)
