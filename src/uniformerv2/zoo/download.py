"""The one download module: zoo files (Hugging Face Hub or resumable, hash-checked HTTP) and Hub
repository snapshots, into local caches.

Cache directory: ``$UNIFORMERV2_CACHE``, else ``$XDG_CACHE_HOME/uniformerv2``, else
``~/.cache/uniformerv2``. Hub files stay in the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``).
Offline mode (``UNIFORMERV2_OFFLINE=1``, ``HF_HUB_OFFLINE=1`` or ``offline=True``) never opens a
connection: only cached files are used. Online, the Hub is first probed with one quick TCP connect
so that a machine without network fails in seconds.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError
from tqdm.auto import tqdm

from uniformerv2.errors import DownloadError
from uniformerv2.zoo.pretrained import PretrainedCfg, WeightSource, get_pretrained_cfg

logger = logging.getLogger(__name__)

#: Seconds to wait for a connection or for the next block of data.
TIMEOUT_S = 20.0
#: Resumptions of an interrupted transfer before giving up (only after some bytes arrived).
MAX_RESUMES = 5
_CHUNK = 1 << 20
_TRUE = ("1", "true", "yes", "on")
#: Failures of one Hub download; the bases add the HTTP client's transport errors (httpx or requests).
_HUB_ERRORS: tuple[type[BaseException], ...] = (HfHubHTTPError, OSError, ValueError, *HfHubHTTPError.__bases__)


class _Interrupted(Exception):
    """The connection ended before the announced length arrived."""


def default_cache_dir() -> Path:
    """The weight cache: ``$UNIFORMERV2_CACHE``, ``$XDG_CACHE_HOME/uniformerv2`` or ``~/.cache/uniformerv2``."""
    if os.environ.get("UNIFORMERV2_CACHE"):
        return Path(os.environ["UNIFORMERV2_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "uniformerv2"


def is_offline() -> bool:
    """True when ``UNIFORMERV2_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("UNIFORMERV2_OFFLINE", "HF_HUB_OFFLINE"))


def fetch_weights(
    name_or_cfg: str | PretrainedCfg,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> Path:
    """Local path of a registered checkpoint, downloading it on first use.

    A file already in the cache under any of the entry's source file names is returned as is
    (hashes are checked when a file is downloaded, not on every load). Otherwise the sources are
    tried in order.

    Args:
        name_or_cfg: registry name or entry.
        cache_dir: directory for URL downloads and manually placed files; default
            :func:`default_cache_dir`.
        offline: never use the network; ``None`` reads ``UNIFORMERV2_OFFLINE`` / ``HF_HUB_OFFLINE``.
        progress: show a progress bar while downloading.

    Returns:
        Path of the checkpoint file.

    Raises:
        DownloadError: no source gave the file; the message lists each source and why it failed,
            and where to place the file by hand.
    """
    cfg = name_or_cfg if isinstance(name_or_cfg, PretrainedCfg) else get_pretrained_cfg(name_or_cfg)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    offline = is_offline() if offline is None else offline
    cached = _find_cached(cfg, root)
    if cached is not None:
        return cached
    failures: list[str] = []
    for source in cfg.sources:
        try:
            return _fetch_source(source, root, offline=offline, progress=progress)
        except DownloadError as exc:
            failures.append(str(exc))
    raise DownloadError(_failure_message(cfg, root, failures, offline))


def _find_cached(cfg: PretrainedCfg, root: Path) -> Path | None:
    for source in cfg.sources:
        path = root / source.cache_name
        if path.is_file():
            logger.debug("using cached %s", path)
            return path
    return None


def _fetch_source(source: WeightSource, root: Path, *, offline: bool, progress: bool) -> Path:
    if source.kind == "hf":
        return _fetch_hf(source, offline=offline)
    if offline:
        raise DownloadError(f"{source.location}: skipped (offline)")
    return download_url(str(source.url), root / source.cache_name, source.sha256, progress=progress)


def _hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the Hub endpoint cannot be reached (one quick TCP connect), or None when it can.

    Checked first so that a machine without network fails in seconds instead of going through
    the Hub client's own retries.
    """
    from huggingface_hub import constants

    url = urlparse(os.environ.get("HF_ENDPOINT", constants.ENDPOINT))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        return f"cannot connect to {url.hostname}:{port} ({_network_reason(exc)})"
    return None


def _fetch_hf(source: WeightSource, *, offline: bool) -> Path:
    unreachable = None if offline else _hub_unreachable()
    try:
        path = hf_hub_download(
            repo_id=str(source.repo_id),
            filename=str(source.filename),
            revision=source.revision,
            local_files_only=offline or unreachable is not None,
        )
    except LocalEntryNotFoundError as exc:
        if unreachable:
            reason = f"unreachable ({unreachable}) and not in the Hugging Face cache"
        else:
            reason = "not in the Hugging Face cache (offline)" if offline else f"unreachable ({_first_line(exc)})"
        raise DownloadError(f"{source.location}: {reason}") from exc
    except _HUB_ERRORS as exc:
        raise DownloadError(f"{source.location}: {_first_line(exc)}") from exc
    if source.sha256:
        _check_hash(Path(path), source.sha256, source.location, delete=False)
    return Path(path)


def download_snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    allow_patterns: list[str] | None = None,
    offline: bool | None = None,
) -> Path:
    """Local snapshot of a Hub repository, from the Hugging Face cache or downloaded into it.

    Args:
        repo_id: ``org/name``.
        revision: branch, tag or commit; the default branch when None.
        allow_patterns: file patterns to fetch (all files when None).
        offline: use the cache only and open no connection; ``None`` reads ``UNIFORMERV2_OFFLINE`` /
            ``HF_HUB_OFFLINE``.

    Raises:
        DownloadError: not cached while offline or unreachable, or a Hub error (one line).
    """
    offline = is_offline() if offline is None else offline
    unreachable = None if offline else _hub_unreachable()
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=allow_patterns,
            local_files_only=offline or unreachable is not None,
        )
    except LocalEntryNotFoundError:
        if unreachable:
            reason = f"not in the Hugging Face cache and the Hub is unreachable ({unreachable})"
        else:
            reason = "not in the Hugging Face cache (offline)" if offline else "not found on the Hub"
        raise DownloadError(f"{repo_id}: {reason}") from None
    except _HUB_ERRORS as exc:
        raise DownloadError(f"{repo_id}: {_first_line(exc)}") from None
    return Path(path)


def _failure_message(cfg: PretrainedCfg, root: Path, failures: list[str], offline: bool) -> str:
    first = cfg.sources[0]
    target = root / first.cache_name
    where = " or ".join(s.location + (f" [{s.status}]" if s.status else "") for s in cfg.sources)
    state = "offline and not cached" if offline else "could not be downloaded"
    tried = "; ".join(failures)
    return (
        f"{cfg.name}: {state} (tried: {tried}). Place the file {first.filename} at {target} "
        f"(it can be obtained from {where})"
    )


def download_url(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    *,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming an interrupted transfer.

    Bytes go to ``dest + ".part"``; an existing ``.part`` file is continued with an HTTP Range
    request. The finished file is hash-checked and then renamed to ``dest``.

    Args:
        url: HTTP(S) URL.
        dest: final file path; parent directories are created.
        sha256: expected SHA-256 hex digest or prefix (at least 8 hex digits); ``None`` skips the check.
        progress: show a tqdm progress bar.
        timeout: seconds to wait for a connection or for data.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: HTTP or network failure (the ``.part`` file is kept for a later resume), or
            a hash mismatch (the ``.part`` file is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumes = 0
    while True:
        start = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, progress=progress, timeout=timeout)
            break
        except DownloadError as exc:
            raise DownloadError(f"{url}: {exc}") from exc
        except _Interrupted as exc:
            made_progress = part.exists() and part.stat().st_size > start
            if not made_progress or resumes >= MAX_RESUMES:
                raise DownloadError(f"{url}: {exc}") from exc
            resumes += 1
            logger.warning("download of %s interrupted (%s); resuming", url, exc)
    if sha256:
        _check_hash(part, sha256, url, delete=True)
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``; raise ``_Interrupted`` on a short read."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "uniformerv2"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part file already holds the whole file
            return
        raise DownloadError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(_network_reason(exc)) from exc
    with response:
        if offset and response.status != 206:  # server ignored the Range header: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        _copy_body(response, part, offset, total, progress=progress)


def _copy_body(
    response: http.client.HTTPResponse, part: Path, offset: int, total: int | None, *, progress: bool
) -> None:
    received = offset
    with (
        open(part, "ab" if offset else "wb") as out,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name[:-5],
            disable=not progress,
        ) as bar,
    ):
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except (http.client.HTTPException, OSError) as exc:
            raise _Interrupted(_network_reason(exc)) from exc
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received} of {total} bytes")


def _check_hash(path: Path, expected: str, url: str, *, delete: bool) -> None:
    actual = sha256_file(path)
    if not actual.startswith(expected.lower()):
        if delete:
            path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: sha256 mismatch, expected {expected}, got {actual}")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _network_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    return _first_line(reason) or type(reason).__name__


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
