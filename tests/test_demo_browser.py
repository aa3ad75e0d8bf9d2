"""The demo page end to end in headless Chromium: it shows the scores `uniformerv2 predict` prints, and errors.

The request logic behind the page (``serving.demo.analyse``) is also tested without a browser.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the ``selenium`` and ``gradio`` Python
packages; without them the tests are skipped with the reason. Screenshots are kept in
``$UNIFORMERV2_TEST_ARTIFACTS`` (or the test's tmp_path).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_tiny_model
from videogen import make_video

from uniformerv2.serving.demo import DemoConfig, ModelCache, analyse, weights_note
from uniformerv2.weights import save_pretrained

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1700",
)
LABELS = ["abseiling", "juggling", "knitting", "rowing", "yoga"]  # not the tiny model's own names
WAIT_S = 40


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    for module in ("selenium", "gradio", "matplotlib"):
        if importlib.util.find_spec(module) is None:
            return f"Python package {module} is not installed (pip install selenium 'uniformerv2[demo]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: install the Debian package {package}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo")
    labels = root / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    return {
        "root": root,
        "model": save_pretrained(make_tiny_model(), root / "tiny_model"),
        "labels": labels,
        "video": make_video(root / "clip.mp4", 200, 64, 48, fps=25),  # 8 s: long enough for the timeline
        "broken": broken,
    }


@pytest.fixture(scope="module")
def server(files) -> Iterator[str]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", UNIFORMERV2_OFFLINE="1", HF_HUB_OFFLINE="1")
    env["GRADIO_TEMP_DIR"] = str(files["root"] / "uploads")
    command = [sys.executable, "-m", "uniformerv2", "demo", "--model", str(files["model"]), "--only"]
    command += ["--labels", str(files["labels"]), "--port", str(port), "--device", "cpu"]
    log = open(files["root"] / "server.log", "w+", encoding="utf-8")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _wait_for(url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"the demo exited with {process.returncode}:\n{log.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the demo did not answer at {url} within {WAIT_S} s")


@pytest.fixture(scope="module")
def browser(server) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="uniformerv2-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("UNIFORMERV2_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _classify(driver, url: str, video: Path) -> str:
    """Load the page, upload ``video``, press Classify; returns the status line once the request is done."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#video-input input[type=file]")).send_keys(str(video))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-input video, #video-input .upload-container"))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#video-input .uploading"))
    driver.find_element(By.CSS_SELECTOR, "#classify").click()

    def finished(d) -> str | None:
        text = " ".join(d.find_element(By.CSS_SELECTOR, "#status").text.split())
        return text if text and not d.find_elements(By.CSS_SELECTOR, "#status .pending, .progress-text") else None

    return wait.until(finished)


@pytest.mark.slow
def test_page_shows_the_scores_of_predict(server, browser, files, artifacts, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    status = _classify(browser, server, files["video"])
    rows = browser.find_elements(By.CSS_SELECTOR, "#prediction-table tr.prediction")
    browser.save_screenshot(str(artifacts / "demo_result.png"))
    assert status.startswith("clip.mp4: 200 frames, 8.0 s"), status
    out = tmp_path / "predict.json"
    command = [sys.executable, "-m", "uniformerv2", "predict", str(files["video"]), "--model", str(files["model"])]
    command += ["--labels", str(files["labels"]), "--json", str(out), "--workers", "0", "--device", "cpu"]
    subprocess.run(command, check=True, capture_output=True, timeout=WAIT_S)
    expected = json.loads(out.read_text())[0]["predictions"]
    shown = [(r.get_attribute("data-label"), float(r.get_attribute("data-score"))) for r in rows]
    assert [label for label, _ in shown] == [p["label"] for p in expected] and len(shown) == 5
    assert [score for _, score in shown] == pytest.approx([p["score"] for p in expected], abs=1e-6)
    texts = [r.find_element(By.CSS_SELECTOR, "td.score").text for r in rows]
    assert texts == [f"{p['score']:.4f}" for p in expected]  # what people read
    assert browser.find_elements(By.CSS_SELECTOR, "#strip img") and browser.find_elements(
        By.CSS_SELECTOR, "#timeline img"
    )


@pytest.mark.slow
def test_page_reports_a_broken_upload(server, browser, files, artifacts) -> None:
    from selenium.webdriver.common.by import By

    status = _classify(browser, server, files["broken"])
    browser.save_screenshot(str(artifacts / "demo_error.png"))
    assert status.startswith("error: broken.mp4: not a readable video"), status
    assert "Traceback" not in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "#prediction-table tr.prediction")


def test_request_logic_without_a_browser(files, monkeypatch) -> None:
    from uniformerv2.inference import predict

    cache = ModelCache("cpu", {str(files["model"]): LABELS})
    config = DemoConfig([str(files["model"])], max_seconds=60, sample=None)
    out = analyse(str(files["video"]), str(files["model"]), cache, config)
    assert out.status.startswith("clip.mp4: 200 frames, 8.0 s")
    model = cache.get(str(files["model"]))
    assert cache.get(str(files["model"])) is model  # loaded once, shared
    assert out.predictions == predict(files["video"], model, top_k=5) and out.predictions[0]["label"] in LABELS
    assert out.strip.shape == (96, 4 * 128 + 3 * 4, 3)  # T = 4 frames, 64x48 scaled to height 96, 4 px gaps
    assert out.timeline is not None and out.timeline.ndim == 3  # 8 s >= 3 windows of 2 s
    short = analyse(str(files["video"]), str(files["model"]), cache, DemoConfig(config.models, max_seconds=5))
    assert short.status == "error: clip.mp4: the video is 8 s; this page accepts up to 5 s"
    small = analyse(str(files["video"]), str(files["model"]), cache, DemoConfig(config.models, max_upload_mb=1e-3))
    assert small.status.startswith("error: clip.mp4: ") and "more than this page accepts (0.001 MB)" in small.status
    broken = analyse(str(files["broken"]), str(files["model"]), cache, config)
    assert broken.status.startswith("error: broken.mp4: not a readable video") and not broken.predictions
    assert analyse(None, str(files["model"]), cache, config).status.startswith("Upload a video")

    def crash(*args, **kwargs):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    monkeypatch.setattr("uniformerv2.serving.demo.predict", crash)
    failed = analyse(str(files["video"]), str(files["model"]), cache, config)
    assert failed.status == "error: clip.mp4: RuntimeError: CUDA out of memory."


def test_missing_zoo_weights_say_where_to_put_them(files, tmp_path, monkeypatch) -> None:
    from uniformerv2.zoo import DEFAULT_MODEL, get_pretrained_cfg

    monkeypatch.setenv("UNIFORMERV2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNIFORMERV2_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    filename = get_pretrained_cfg(DEFAULT_MODEL).sources[0].filename
    target = tmp_path / "cache" / str(filename)
    note = weights_note(DEFAULT_MODEL)
    assert note.startswith("**Offline, weights not found.**") and f"Place the file {filename} at {target}" in note
    out = analyse(str(files["video"]), DEFAULT_MODEL, ModelCache("cpu"), DemoConfig([DEFAULT_MODEL], sample=None))
    assert out.status.startswith(
        f"error: weights of {DEFAULT_MODEL} are missing. Place the file {filename} at {target}"
    )


def test_demo_command_refuses_bad_setup_before_serving(files, tmp_path, capsys) -> None:
    from uniformerv2.cli.main import main

    assert main(["demo", "--checkpoint", str(tmp_path / "missing.pyth")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing.pyth'}: no such checkpoint file"
    wrong = tmp_path / "two.txt"
    wrong.write_text("a\nb\n", encoding="utf-8")
    assert main(["demo", "--model", str(files["model"]), "--labels", str(wrong)]) == 2
    assert "2 labels, but the model has 5 classes" in capsys.readouterr().err
