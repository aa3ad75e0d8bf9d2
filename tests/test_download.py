"""Downloads against a local HTTP server on 127.0.0.1: caching, hashes, resume, offline mode."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from uniformerv2.errors import DownloadError
from uniformerv2.preprocess import PreprocessConfig
from uniformerv2.zoo import PretrainedCfg, WeightSource, download_url, fetch_weights, register_pretrained
from uniformerv2.zoo import download as download_module
from uniformerv2.zoo.pretrained import unregister_pretrained

PAYLOAD = os.urandom(1_000_003)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
_REAL_CONNECT = socket.socket.connect


class FileServer:
    """Serves PAYLOAD at /weights.pth with Range support; records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str | None]] = []
        self.drop_after: int | None = None  # first request: close after this many body bytes
        self.honour_range = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                if self.path != "/weights.pth":
                    self.send_error(404)
                    return
                start = 0
                header = self.headers.get("Range")
                if header and server.honour_range:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drop_after is not None and len(server.requests) == 1:
                    self.wfile.write(body[: server.drop_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802 (the Hub client asks for metadata first)
                server.requests.append({"path": self.path, "range": None})
                self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fail any connection that is not to 127.0.0.1, and isolate every cache and offline flag."""

    def connect(sock: socket.socket, address: object) -> None:
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            raise OSError(f"test tried to reach the network: {address!r}")
        _REAL_CONNECT(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for var in ("UNIFORMERV2_OFFLINE", "HF_HUB_OFFLINE", "UNIFORMERV2_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def register() -> Iterator:
    names: list[str] = []

    def _register(*sources: WeightSource, name: str = "test-local-weights") -> PretrainedCfg:
        cfg = PretrainedCfg(
            name=name,
            arch="uniformerv2_b16",
            num_classes=400,
            labels="kinetics400",
            preprocess=PreprocessConfig(),
            sources=sources,
        )
        register_pretrained(cfg)
        names.append(name)
        return cfg

    yield _register
    for name in names:
        unregister_pretrained(name)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.pth"


def test_download_checks_hash_and_is_cached(server: FileServer, cache: Path, register) -> None:
    register(WeightSource("url", url=server.url, sha256=SHA256))
    path = fetch_weights("test-local-weights", cache_dir=cache, progress=False)
    assert path == cache / "weights.pth" and path.read_bytes() == PAYLOAD
    assert len(server.requests) == 1
    assert fetch_weights("test-local-weights", cache_dir=cache, progress=False) == path
    assert len(server.requests) == 1  # second call served from the cache
    assert not list(cache.glob("*.part"))


def test_hash_prefix_is_accepted(server: FileServer, cache: Path) -> None:
    path = download_url(server.url, cache / "w.pth", SHA256[:8], progress=False)
    assert path.read_bytes() == PAYLOAD


def test_cache_dir_from_environment(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, register
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download_module.default_cache_dir() == tmp_path / "xdg" / "uniformerv2"
    monkeypatch.setenv("UNIFORMERV2_CACHE", str(tmp_path / "own"))
    register(WeightSource("url", url=server.url, sha256=SHA256))
    assert fetch_weights("test-local-weights", progress=False) == tmp_path / "own" / "weights.pth"


def test_wrong_hash_raises_and_leaves_nothing(server: FileServer, cache: Path, register) -> None:
    register(WeightSource("url", url=server.url, sha256="0" * 64))
    with pytest.raises(DownloadError) as info:
        fetch_weights("test-local-weights", cache_dir=cache, progress=False)
    message = str(info.value)
    assert server.url in message and "0" * 64 in message and SHA256 in message
    assert "\n" not in message
    assert list(cache.iterdir()) == []


def test_interrupted_download_resumes_with_range(server: FileServer, cache: Path) -> None:
    server.drop_after = 300_000
    path = download_url(server.url, cache / "w.pth", SHA256, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None, "bytes=300000-"]


def test_resume_across_calls(server: FileServer, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.drop_after = 123_456
    monkeypatch.setattr(download_module, "MAX_RESUMES", 0)
    with pytest.raises(DownloadError, match="123456 of"):
        download_url(server.url, cache / "w.pth", SHA256, progress=False)
    assert (cache / "w.pth.part").stat().st_size == 123_456
    assert not (cache / "w.pth").exists()
    assert download_url(server.url, cache / "w.pth", SHA256, progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == "bytes=123456-"


def test_server_ignoring_range_restarts(server: FileServer, cache: Path) -> None:
    (cache).mkdir()
    (cache / "w.pth.part").write_bytes(b"stale bytes")
    server.honour_range = False
    assert download_url(server.url, cache / "w.pth", SHA256, progress=False).read_bytes() == PAYLOAD


def test_complete_part_file_is_finished(server: FileServer, cache: Path) -> None:
    cache.mkdir()
    (cache / "w.pth.part").write_bytes(PAYLOAD)
    assert download_url(server.url, cache / "w.pth", SHA256, progress=False).read_bytes() == PAYLOAD
    assert server.requests[0]["range"] == f"bytes={len(PAYLOAD)}-"


@pytest.mark.parametrize("how", ["argument", "UNIFORMERV2_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_with_empty_cache_says_where_to_put_the_file(
    server: FileServer, cache: Path, register, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    register(WeightSource("url", url=server.url, sha256=SHA256))
    if how != "argument":
        monkeypatch.setenv(how, "1")
    with pytest.raises(DownloadError) as info:
        fetch_weights("test-local-weights", cache_dir=cache, offline=True if how == "argument" else None)
    message = str(info.value)
    assert str(cache / "weights.pth") in message and "weights.pth" in message
    assert server.url in message and "offline" in message and "\n" not in message
    assert server.requests == []


def test_offline_with_filled_cache(server: FileServer, cache: Path, register) -> None:
    register(WeightSource("url", url=server.url, sha256=SHA256))
    cache.mkdir()
    (cache / "weights.pth").write_bytes(PAYLOAD)
    assert fetch_weights("test-local-weights", cache_dir=cache, offline=True) == cache / "weights.pth"
    assert server.requests == []


def test_unreachable_source_is_listed(cache: Path, register) -> None:
    url = _closed_port_url()
    register(WeightSource("url", url=url))
    with pytest.raises(DownloadError) as info:
        fetch_weights("test-local-weights", cache_dir=cache, progress=False)
    message = str(info.value)
    assert url in message and "refused" in message.lower()
    assert "\n" not in message


def test_falls_through_to_the_next_source(server: FileServer, cache: Path, register) -> None:
    missing = server.url.replace("weights.pth", "missing.pth")
    register(
        WeightSource("url", url=_closed_port_url()),
        WeightSource("url", url=missing),
        WeightSource("url", url=server.url, sha256=SHA256),
    )
    assert fetch_weights("test-local-weights", cache_dir=cache, progress=False).read_bytes() == PAYLOAD
    assert [r["path"] for r in server.requests] == ["/missing.pth", "/weights.pth"]


def test_hf_source_offline_falls_through_cleanly(
    server: FileServer, cache: Path, register, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = register(
        WeightSource("hf", repo_id="someone/weights", filename="hub+name.pyth"),
        WeightSource("url", url=server.url, sha256=SHA256),
    )
    with pytest.raises(DownloadError) as info:
        fetch_weights(cfg, cache_dir=cache)
    message = str(info.value)
    assert "not in the Hugging Face cache" in message and "skipped (offline)" in message
    assert str(cache / "hub+name.pyth") in message
    assert server.requests == []
    (cache).mkdir()
    (cache / "hub+name.pyth").write_bytes(b"placed by hand")
    assert fetch_weights(cfg, cache_dir=cache) == cache / "hub+name.pyth"


def test_hub_error_falls_through_to_url(
    server: FileServer, cache: Path, register, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # The local server answers the Hub's requests with 404.
    endpoint = server.url.rsplit("/", 1)[0]
    template = huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        template.replace(huggingface_hub.constants.ENDPOINT, endpoint),
    )
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    cfg = register(
        WeightSource("hf", repo_id="someone/weights", filename="hub.pyth"),
        WeightSource("url", url=server.url, sha256=SHA256),
    )
    assert fetch_weights(cfg, cache_dir=cache, progress=False).read_bytes() == PAYLOAD
    assert any("someone/weights" in str(r["path"]) for r in server.requests)
    assert server.requests[-1]["path"] == "/weights.pth"


def test_unreachable_hub_fails_fast_to_the_next_source(
    server: FileServer, cache: Path, register, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", _closed_port_url().rsplit("/", 1)[0])
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    cfg = register(
        WeightSource("hf", repo_id="someone/weights", filename="hub.pyth"),
        WeightSource("url", url=server.url, sha256=SHA256),
    )
    start = time.monotonic()
    assert fetch_weights(cfg, cache_dir=cache, progress=False).read_bytes() == PAYLOAD
    assert time.monotonic() - start < 5  # no Hub client retries
    assert [r["path"] for r in server.requests] == ["/weights.pth"]
