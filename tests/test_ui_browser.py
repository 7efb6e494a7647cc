"""The web app in a real headless Chromium (Debian's chromium + chromedriver, no download).

Served on a free loopback port over a copy of corpus/: upload a file, ask about it, see
the answer and its source, open the source (a PDF at its page), reload and find the
conversation, stop an answer, and check that markup in a document, a file name and a
model reply does nothing. Screenshots of every page go to tests/artifacts/browser/
(or $RAGPIPE_TEST_ARTIFACTS/browser/).
"""

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
ARTIFACTS = Path(os.environ.get("RAGPIPE_TEST_ARTIFACTS", ROOT / "tests" / "artifacts")) / (
    "browser")
PAYLOADS = ("<script>window.__xss=1</script>", "<img src=x onerror=\"window.__xss=2\">",
            "![tracker](http://evil.example/p.png)", "[click me](javascript:window.__xss=3)")
PARKING = "Parking permits for the Rotterdam office are issued by Facilities at desk P-12."
BADGES = "Visitor badges are renewed every year at the front desk. " + " ".join(PAYLOADS)
XSS_NAME = "<img src=x onerror=window.__xss=4>.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tmp_path: Path, embedder, **env_extra: str):  # noqa: ANN001, ANN201
    """Index a copy of corpus/ and start the app on a free port; returns (url, port, proc)."""
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are needed: `apt-get install chromium "
                    "chromium-driver` (.ci/run installs them)")
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    env = {**os.environ, "RAGPIPE_PATHS_INDEXES": str(tmp_path / "indexes"),
           "RAGPIPE_PATHS_MODELS": str(ROOT / "models"), "RAGPIPE_LLM_MODEL": "smollm2-135m",
           "RAGPIPE_LLM_N_CTX": "2048", "RAGPIPE_LLM_MAX_TOKENS": "48", "HF_HUB_OFFLINE": "1",
           **env_extra}
    settings = load_settings(overrides={"paths.indexes": tmp_path / "indexes"}, environ={})
    Pipeline(settings, "default", embedder=embedder).ingest(docs)
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
    return url, port, proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def server(tmp_path, embedder):
    url, port, proc = serve(tmp_path, embedder)
    yield url, port, tmp_path / "docs"
    stop(proc)


@pytest.fixture
def driver(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,800",
                 f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield d
    d.quit()


def shot(driver, name: str, last_answer: bool = False) -> None:  # noqa: ANN001
    """Save a screenshot; ``last_answer`` scrolls the latest answer to the top first."""
    if last_answer:
        driver.execute_script(
            "const m = document.querySelectorAll(\"[data-testid='stChatMessage']\");"
            "m[m.length - 2].scrollIntoView({block: 'start'});")
        time.sleep(0.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def body(driver) -> str:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def wait(driver, test, timeout: float = 150):  # noqa: ANN001, ANN201
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.3).until(test)
    except TimeoutException:
        shot(driver, "timed-out")  # what the page showed instead
        raise


def ask(driver, question: str, answers_before: int) -> None:  # noqa: ANN001
    """Type a question, press Enter, wait until its answer and sources are shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = wait(driver, lambda d: d.find_element(
        By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']"))
    box.send_keys(question)
    box.send_keys(Keys.ENTER)  # Enter submits
    wait(driver, lambda d: len(d.find_elements(
        By.XPATH, "//*[contains(text(), 'Sources (') or contains(text(), 'Closest passages (')]"
    )) > answers_before)


def click_text(driver, css: str, text: str) -> None:  # noqa: ANN001
    """Click the first element matching ``css`` with a line of text that starts with ``text``.

    (An icon is a line of its own: its name, drawn as a ligature.)
    """
    def found(d):  # noqa: ANN001, ANN202
        return next((e for e in d.find_elements("css selector", css)
                     if e.is_displayed() and e.is_enabled()
                     and any(t.strip().startswith(text) for t in e.text.splitlines())), None)

    wait(driver, found, 60).click()


def go(driver, page: str) -> None:  # noqa: ANN001
    click_text(driver, "[data-testid='stSidebarNavLink']", page)


def assert_inert(driver) -> None:  # noqa: ANN001
    """Nothing the documents or the model wrote ran or loaded on the page."""
    from selenium.webdriver.common.by import By

    assert driver.execute_script("return window.__xss") is None
    shown = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage'], "
                                 "[data-testid='stSidebar'], [role='dialog']")
    assert shown
    for part in shown:
        assert not part.find_elements(By.CSS_SELECTOR, "img[onerror], img[src='x'], script")
        assert not part.find_elements(By.CSS_SELECTOR, "a[href^='javascript'], img[src*='evil']")
    for part in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage'], "
                                                      "[role='dialog']"):
        assert not part.find_elements(By.CSS_SELECTOR, "a[href]")  # not even an address


def test_server_listens_on_loopback_only(server):
    _, port, _ = server
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("ss is not available")
    addrs = {line.split()[3].rsplit(":", 1)[0] for line in out.stdout.splitlines() if line}
    assert addrs and addrs <= {"127.0.0.1", "[::1]"}, addrs


@pytest.mark.timing
def test_upload_ask_open_source_and_come_back(server, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _, docs = server
    driver.get(url)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stChatInput']"))
    assert "?u=" in driver.current_url  # the browser's token, kept in the URL
    shot(driver, "01-ask-empty")

    # an admin uploads two files (one with markup in its name and text) and syncs
    go(driver, "Documents")
    click_text(driver, "[role='tab']", "Add documents")
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "parking.txt").write_text(PARKING)
    (upload / XSS_NAME).write_text(BADGES)
    picker = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "input[type='file']"))
    picker.send_keys(f"{upload / 'parking.txt'}\n{upload / XSS_NAME}")
    wait(driver, lambda d: "parking.txt" in body(d))
    click_text(driver, "button", "Upload and sync")  # enabled once the files have arrived
    wait(driver, lambda d: "Sync of default done" in body(d), 240)
    assert "+2 added" in body(driver) and (docs / "parking.txt").read_text() == PARKING
    click_text(driver, "[role='tab']", "Documents in the index")
    shot(driver, "02-documents")

    # an employee asks about the new file and opens its source
    go(driver, "Ask")
    ask(driver, "Who issues parking permits for the Rotterdam office?", 0)
    text = body(driver)
    assert "parking.txt" in text and "P-12" in text
    shot(driver, "03-answer", last_answer=True)
    click_text(driver, "button", "[1] parking.txt")
    dialog = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "[role='dialog']"))
    wait(driver, lambda d: "Download the original" in dialog.text)
    assert "Facilities" in dialog.text
    shot(driver, "04-source")
    dialog.send_keys(Keys.ESCAPE)
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "[role='dialog']"))

    # a PDF source opens in the browser's own viewer, at the cited page
    ask(driver, "Which form do I use to claim travel expenses?", 1)
    shot(driver, "05-answer-pdf", last_answer=True)
    click_text(driver, "button", "[1] travel-policy.pdf")
    chip = [e for e in driver.find_elements(By.CSS_SELECTOR, "button")
            if e.text.startswith("[1] travel-policy.pdf")][0].text
    page = chip.rsplit("page ", 1)[1].strip()
    frame = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "[role='dialog'] iframe"))
    shot(driver, "06-source-pdf")
    main = driver.current_window_handle
    driver.switch_to.frame(frame)
    driver.find_element(By.ID, "open").click()
    driver.switch_to.default_content()
    wait(driver, lambda d: len(d.window_handles) == 2)
    driver.switch_to.window(next(h for h in driver.window_handles if h != main))
    assert driver.current_url.startswith("blob:http://127.0.0.1")
    assert driver.current_url.endswith(f"#page={page}")
    time.sleep(2)  # the viewer draws the page
    shot(driver, "07-pdf-at-page")
    driver.close()
    driver.switch_to.window(main)
    driver.find_element(By.CSS_SELECTOR, "[role='dialog']").send_keys(Keys.ESCAPE)

    # markup in a document, its file name and the answer does nothing
    ask(driver, "How often are visitor badges renewed?", 2)
    assert_inert(driver)
    text = body(driver)
    assert "onerror" in text  # shown, as text

    # reload: the conversation is still there; a new tab with the token lists it
    chat_url = driver.current_url
    driver.refresh()
    wait(driver, lambda d: len(d.find_elements(
        By.CSS_SELECTOR, "[data-testid='stChatMessage']")) == 6)
    assert_inert(driver)
    token = chat_url.split("u=")[1].split("&")[0]
    driver.get(f"{url}/?u={token}")
    click_text(driver, "[data-testid='stSidebar'] button",
               "Who issues parking permits")
    wait(driver, lambda d: len(d.find_elements(
        By.CSS_SELECTOR, "[data-testid='stChatMessage']")) == 6)
    shot(driver, "08-ask-reopened")

    go(driver, "Index health")
    wait(driver, lambda d: "Questions" in body(d) and "Quick check" in body(d))
    shot(driver, "09-health")
    go(driver, "Model card")
    wait(driver, lambda d: "Embedder" in body(d) and "context window 2048" in body(d), 60)
    shot(driver, "10-model-card")

    # a narrow window: the page reflows, nothing scrolls sideways
    driver.set_window_size(420, 860)
    driver.get(chat_url)
    wait(driver, lambda d: len(d.find_elements(
        By.CSS_SELECTOR, "[data-testid='stChatMessage']")) == 6)
    time.sleep(1)
    assert driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(driver, "11-ask-narrow")


@pytest.mark.timing
def test_stop_ends_an_answer_in_a_real_browser(tmp_path, embedder, driver):
    """Stop during a long answer: the page says so at once and the model is free again."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    # free prose and a large budget: an answer long enough to be stopped
    url, _, proc = serve(tmp_path, embedder, RAGPIPE_ANSWER_STYLE="free",
                         RAGPIPE_LLM_MAX_TOKENS="600", RAGPIPE_ANSWER_CHECK="false")
    try:
        driver.get(url)
        box = wait(driver, lambda d: d.find_element(
            By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']"))
        box.send_keys("Describe everything the travel policy says, in detail.")
        box.send_keys(Keys.ENTER)
        wait(driver, lambda d: "▌" in body(d), 120)  # the answer is streaming
        click_text(driver, "button", "Stop")
        wait(driver, lambda d: "Stopped before the answer was finished." in body(d), 30)
        shot(driver, "12-stopped")
        ask(driver, "Which form do I use to claim travel expenses?", 0)  # the model is free
    finally:
        stop(proc)
