"""Atomic file writes: finished results and checkpoints are never left half-written.

Every writer goes to a temporary file in the target's directory, flushes it to disk, and renames
it over the target (``os.replace`` is atomic on one filesystem); the directory is then flushed so
the rename survives a power cut. On failure the temporary file is removed and any earlier version
of the target stays intact. Files get the permissions the user's umask gives (as ``open`` would),
not the private 0600 of :func:`tempfile.mkstemp`.

Temporary names are ``.<name>.uv2tmp-<host>-<pid>-<random><suffix>``, at most 255 bytes however
long the target name is; :func:`remove_stale_temps` deletes those a killed run left behind.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from uniformerv2.errors import OutputError, printable, special_file_problem

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_csv",
    "atomic_torch_save",
    "atomic_savefig",
    "json_safe",
    "output_error",
    "remove_stale_temps",
    "short_name",
]

#: Longest file name (in bytes) on common filesystems (ext4, XFS, APFS, NTFS).
NAME_MAX = 255
#: Temporary files of another machine (shared filesystem) count as stale after this long.
FOREIGN_STALE_SECONDS = 24 * 3600

_MARK = "uv2tmp"
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_TEMP_RE = re.compile(rf"^\..*\.{_MARK}-(?P<host>[0-9a-f]{{6}})-(?P<pid>\d+)-[A-Za-z0-9_]{{8}}(\.[^.]*)?$", re.DOTALL)
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def short_name(name: str, max_bytes: int) -> str:
    """``name`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    return name.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_parts(path: Path) -> tuple[str, str]:
    """(prefix, suffix) of the temporary name: mkstemp adds 8 random characters in between."""
    suffix = path.suffix if len(path.suffix.encode("utf-8")) <= 16 else ""
    marker = f".{_MARK}-{_HOST}-{os.getpid()}-"
    room = NAME_MAX - len(marker.encode()) - 8 - len(suffix.encode("utf-8")) - 1
    return f".{short_name(path.name, room)}{marker}", suffix


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` and rename the result over ``path``; returns ``path``.

    The temporary name keeps ``path``'s suffix, so writers that pick a format from it
    (matplotlib, numpy) behave as for ``path`` itself.

    Raises:
        OutputError: the disk (or quota) is full, the directory cannot be written, or ``path`` is
            an existing named pipe or device.
    """
    path = Path(path)
    problem = special_file_problem(path)
    if problem:  # renaming over a device or pipe would silently replace it instead of writing to it
        raise OutputError(f"{printable(path)}: {problem}; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix, suffix = _temp_parts(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    except OSError as exc:
        raise output_error(path, exc) from exc
    try:
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # after the writer, which may have re-created the file
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        if exc.errno in (*_NO_SPACE, errno.EACCES, errno.EPERM, errno.EROFS):
            raise output_error(path, exc) from exc
        raise
    except RuntimeError as exc:  # torch.save reports a full disk as "file write failed"
        if _disk_full(path.parent):
            raise output_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _disk_full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < 1 << 20
    except OSError:
        return False


def output_error(path: Path, exc: OSError) -> OutputError:
    """The one-line error for ``exc`` raised while writing ``path`` (full disk, no permission, ...)."""
    directory = path.parent if str(path.parent) else Path(".")
    if exc.errno in _NO_SPACE:
        return OutputError(f"no space left on {directory} (writing {path.name})")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{path}: cannot write here ({exc.strerror.lower() if exc.strerror else exc})")
    return OutputError(f"{path}: {exc.strerror or exc}")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, so it can be written as strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 1) -> Path:
    """Write ``obj`` as strict JSON (RFC 8259: NaN and infinities become ``null``), atomically."""
    text = json.dumps(json_safe(obj), indent=indent, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_write_csv(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write rows (dicts; missing columns left empty, extra keys ignored) as CSV with a header, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_save_npy(array: Any, path: str | os.PathLike[str]) -> Path:
    """``numpy.save(array)`` to ``path`` atomically (the name should end in ``.npy``)."""
    import numpy as np

    return atomic_write(path, lambda tmp: np.save(tmp, array))


def atomic_savefig(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure to ``path`` atomically (format from the suffix).

    Works with a bare ``matplotlib.figure.Figure`` (no pyplot), so the global backend is never touched.
    """
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed runs left in ``directory`` (not recursive).

    A temporary file of this machine is stale when the process that made it is gone; one made on
    another machine (a shared filesystem) when it is older than :data:`FOREIGN_STALE_SECONDS`.
    Only names of this module's pattern are considered. Returns the files removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        match = _TEMP_RE.match(entry.name)
        if not match or not entry.is_file():
            continue
        if match["host"] == _HOST:
            stale = not _pid_alive(int(match["pid"]))
        else:
            stale = time.time() - entry.stat().st_mtime > FOREIGN_STALE_SECONDS
        if stale:
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
