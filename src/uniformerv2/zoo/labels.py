"""Class-name lists shipped with the package, the K710 head maps, and a reader for users' label files.

Every list is in the order of the classifier rows it describes: entry ``i`` names output ``i``.
The data files live in ``uniformerv2/zoo/labels/`` and are read with :mod:`importlib.resources`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path

from uniformerv2.errors import printable, special_file_problem

#: Label-set name -> (file in ``zoo/labels``, number of rows taken from its top).
_LABEL_SETS: dict[str, tuple[str, int]] = {
    "kinetics400": ("kinetics710_official_order.txt", 400),
    "kinetics400_alphabetical": ("kinetics400_alphabetical.txt", 400),
    "kinetics600_alphabetical": ("kinetics600_alphabetical.txt", 600),
    "kinetics700_alphabetical": ("kinetics700_alphabetical.txt", 700),
    "kinetics710_official": ("kinetics710_official_order.txt", 710),
    "kinetics710_mmaction2": ("kinetics710_mmaction2_order.txt", 710),
    "sthv1": ("sthv1.txt", 174),
    "sthv2": ("sthv2.txt", 174),
    "mit": ("mit.txt", 339),
    "activitynet": ("activitynet.txt", 200),
    "ucf101": ("ucf101.txt", 101),
    "hmdb51": ("hmdb51.txt", 51),
}

#: K710 head orders that have index maps, and the label sets those maps produce.
_MAP_SOURCES = ("kinetics710_official", "kinetics710_mmaction2")
_MAP_TARGETS = ("kinetics400_alphabetical", "kinetics600_alphabetical", "kinetics700_alphabetical")

_INDEXED_LINE = re.compile(r"^(?P<name>.*\S)\t+(?P<idx>\d+)$")
_CSV_LINE = re.compile(r"^\s*\d+\s*,")


def list_label_sets() -> list[str]:
    """Names accepted by :func:`load_labels`, sorted."""
    return sorted(_LABEL_SETS)


def load_labels(name: str) -> list[str]:
    """Class names of a shipped label set, in head order.

    Args:
        name: one of :func:`list_label_sets`. ``"kinetics400"`` is the order of the official
            UniFormerV2 K400 heads (the first 400 rows of the official K710 order, K700 wording);
            ``"kinetics400_alphabetical"`` is the order of MMAction2's K400 heads.

    Returns:
        A new list of class names; entry ``i`` names output ``i``.

    Raises:
        KeyError: ``name`` is not a shipped label set.
    """
    if name not in _LABEL_SETS:
        raise KeyError(f"unknown label set {name!r}; known: {', '.join(list_label_sets())}")
    return list(_load_set(name))


@cache
def _load_set(name: str) -> tuple[str, ...]:
    filename, count = _LABEL_SETS[name]
    lines = _read_resource(filename).splitlines()[:count]
    return tuple(_strip_index(line) for line in lines)


def _read_resource(filename: str) -> str:
    return resources.files("uniformerv2.zoo").joinpath("labels").joinpath(filename).read_text(encoding="utf-8")


def _strip_index(line: str) -> str:
    match = _INDEXED_LINE.match(line.rstrip("\r\n"))
    return match["name"] if match else line.strip()


def load_label_map(source: str = "kinetics710_official", target: str = "kinetics400_alphabetical") -> list[int]:
    """Row indices that turn a K710 head into a Kinetics-400/600/700 head.

    Entry ``k`` is the row of the ``source`` head for class ``k`` of ``target``, so
    ``weight[label_map]`` gives a head in ``target`` order.

    Args:
        source: K710 head order, ``"kinetics710_official"`` or ``"kinetics710_mmaction2"``.
        target: ``"kinetics400_alphabetical"``, ``"kinetics600_alphabetical"`` or
            ``"kinetics700_alphabetical"``.

    Raises:
        KeyError: no map exists for this pair.
    """
    if source not in _MAP_SOURCES or target not in _MAP_TARGETS:
        raise KeyError(f"no label map from {source!r} to {target!r}; sources {_MAP_SOURCES}, targets {_MAP_TARGETS}")
    src = source.removeprefix("kinetics710_")
    dst = target.removeprefix("kinetics").removesuffix("_alphabetical")
    return json.loads(_read_resource(f"k710_{src}_to_k{dst}_alphabetical.json"))


def read_label_file(path: str | os.PathLike[str], expected: int | None = None) -> list[str]:
    """Read a user's label file.

    Accepted layouts (detected from the content; blank lines are skipped):

    * one class name per line, line ``i`` = class ``i``;
    * ``name<TAB>index`` per line (the layout of ``kinetics710_official_order.txt``);
    * CSV ``index,name`` per line, with an optional header row (names may be quoted).

    Indexed layouts are sorted by index; indices must be contiguous from 0 or from 1.

    Args:
        path: the text file.
        expected: number of classes the model has; checked when given.

    Returns:
        Class names in index order.

    Raises:
        ValueError: a binary or non-UTF-8 file, indices that are not contiguous, or a count that
            differs from ``expected`` (the message names the file).
    """
    if Path(path).is_dir():
        raise ValueError(f"{printable(path)}: is a directory, not a label file")
    problem = special_file_problem(path)
    if problem:
        raise ValueError(f"{printable(path)}: {problem}")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{printable(path)}: no such label file") from None
    except OSError as exc:
        raise ValueError(f"{printable(path)}: cannot read the label file ({exc.strerror or exc})") from None
    if b"\x00" in data[:8192]:
        raise ValueError(f"{os.fspath(path)}: not a text file (binary data); expected one class name per line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{os.fspath(path)}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the label file as UTF-8"
        ) from None
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if lines and all(_INDEXED_LINE.match(line) for line in lines):
        matches = [m for m in map(_INDEXED_LINE.match, lines) if m is not None]
        pairs = [(int(m["idx"]), m["name"].strip()) for m in matches]
        names = _order_by_index(pairs, path)
    elif len(lines) > 1 and all(_CSV_LINE.match(line) for line in lines[1:]):
        rows = list(csv.reader(lines[1:] if not _CSV_LINE.match(lines[0]) else lines))
        names = _order_by_index([(int(row[0]), ",".join(row[1:]).strip()) for row in rows], path)
    else:
        names = [line.strip() for line in lines]
    if expected is not None and len(names) != expected:
        raise ValueError(f"{os.fspath(path)}: {len(names)} labels, but the model has {expected} classes")
    return names


def _order_by_index(pairs: list[tuple[int, str]], path: str | os.PathLike[str]) -> list[str]:
    pairs.sort()
    indices = [idx for idx, _ in pairs]
    start = indices[0] if indices else 0
    if start not in (0, 1) or indices != list(range(start, start + len(indices))):
        raise ValueError(f"{os.fspath(path)}: label indices must be contiguous from 0 or 1")
    return [name for _, name in pairs]
