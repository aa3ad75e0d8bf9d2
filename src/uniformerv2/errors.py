"""The package's exception types: each message is one line naming the file and the cause."""

from __future__ import annotations


class UniFormerV2Error(Exception):
    """Base class of every error this package raises on purpose."""


class VideoDecodeError(UniFormerV2Error):
    """A video could not be read: ``path`` names the file, ``reason`` says why in words."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


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
        super().__init__(f"{self.path}: {reason}")
