"""The web page in a real headless Chromium: serve the UI, ask, see the answer and its sources."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, embedder):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are needed: `apt-get install chromium "
                    "chromium-driver` (.ci/run installs them)")
    env = {**os.environ, "RAGPIPE_PATHS_INDEXES": str(tmp_path / "indexes"),
           "RAGPIPE_PATHS_MODELS": str(ROOT / "models"), "RAGPIPE_LLM_MODEL": "smollm2-135m",
           "RAGPIPE_LLM_N_CTX": "2048", "RAGPIPE_LLM_MAX_TOKENS": "48", "HF_HUB_OFFLINE": "1"}
    settings = load_settings(overrides={"paths.indexes": tmp_path / "indexes"}, environ={})
    Pipeline(settings, "default", embedder=embedder).ingest(CORPUS)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "app.py"),
         "--server.port", str(port)],  # address, headless, stats: from .streamlit/config.toml
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start: {proc.stdout.read()}")
    yield url, port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_server_listens_on_loopback_only(server):
    _, port = server
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("ss is not available")
    addrs = {line.split()[3].rsplit(":", 1)[0] for line in out.stdout.splitlines() if line}
    assert addrs and addrs <= {"127.0.0.1", "[::1]"}, addrs


def test_question_in_a_real_browser(server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,1600",
                 f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 120)
        box = wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")))
        box.send_keys("Which form do I use to claim travel expenses?")
        box.send_keys(Keys.ENTER)
        wait.until(lambda d: "Sources (" in d.find_element(By.TAG_NAME, "body").text)
        body = driver.find_element(By.TAG_NAME, "body").text
        driver.save_screenshot(str(tmp_path / "answer.png"))
        assert "travel-policy.pdf" in body
        assert "TR-7" in body  # the passage text is shown for checking
        messages = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")
        assert len(messages) == 2
    finally:
        driver.quit()
