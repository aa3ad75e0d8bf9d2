"""The package's exception types: each message is one line naming the file and the cause."""

from __future__ import annotations

import errno
import os
import stat

_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def printable(text: object) -> str:
    """``text`` with control characters (newlines, tabs, escape codes) written as ``\\n``-style escapes,
    so that a file name can never split or colour a one-line message."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def special_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a file's bytes, or None for a regular file or directory.

    Named pipes and devices (``/dev/urandom``, a FIFO) never end or block forever, so they are
    refused by name instead of being read; a symbolic link loop is named as such.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return None
    for test, kind in _KINDS:
        if test(mode):
            return f"not a regular file ({kind})"
    return None


class UniFormerV2Error(Exception):
    """Base class of every error this package raises on purpose."""


class VideoDecodeError(UniFormerV2Error):
    """A video could not be read: ``path`` names the file, ``reason`` says why in words."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{printable(self.path)}: {reason}")


class CheckpointError(UniFormerV2Error):
    """A checkpoint could not be used: wrong format, unsafe pickle, or keys that do not match."""


class DownloadError(UniFormerV2Error):
    """A weight file could not be fetched (offline, network, hash mismatch)."""


class DeviceError(UniFormerV2Error):
    """The requested device is unknown or not available on this machine."""


class OutputError(UniFormerV2Error):
    """A result could not be written: no space left, no permission, or an output that cannot be made."""


class ResumeError(UniFormerV2Error):
    """Earlier partial results in an output were made with other settings and cannot be resumed."""


class InputError(UniFormerV2Error):
    """Command-line inputs name no videos: an empty list or directory, or a list that is not text."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{printable(self.path)}: {reason}")
