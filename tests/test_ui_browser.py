"""The web app in a real headless Chromium (Debian's chromium + chromedriver, no download).

Served on a free loopback port over a copy of corpus/: upload a file, ask about it, see
the answer and its source, open the source (a PDF at its page), reload and find the
conversation, sign in and stop an answer, and check that markup in a document, a file
name and a model reply does nothing.

These run on a loaded 2-core machine beside other work, so nothing here sleeps for a
fixed time: every step waits for what it needs on the page, and for the app to be idle
(Streamlit's ``stApp`` element says whether a page run is going on and whether the
browser is connected), with generous limits. Clicks are tried again when Streamlit
redraws the element between finding and clicking it.

Artifacts, in tests/artifacts/browser/ (or $RAGPIPE_TEST_ARTIFACTS/browser/): a
screenshot of every page at 1280×800, the server's output per test (``*-server.log``)
and, when a wait runs out, the page as it was (``timed-out-*.png`` and ``.txt``). With
RAGPIPE_DOCS_SCREENSHOTS=docs/screenshots the README's screenshots are written too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("RAGPIPE_TEST_ARTIFACTS", ROOT / "tests" / "artifacts")) / (
    "browser")
DOCS_SHOTS = os.environ.get("RAGPIPE_DOCS_SCREENSHOTS")
WIDTH, HEIGHT = 1280, 800  # the page's own size (the viewport), as in the README
# A wait on the server: a page run that loads a model, a sync, an answer, on 2 busy cores.
LONG = 300.0
# A wait on the browser alone (a dialog, a tab, a redraw).
SHORT = 60.0
PAYLOADS = ("<script>window.__xss=1</script>", "<img src=x onerror=\"window.__xss=2\">",
            "![tracker](http://evil.example/p.png)", "[click me](javascript:window.__xss=3)")
PARKING = "Parking permits for the Rotterdam office are issued by Facilities at desk P-12."
BADGES = "Visitor badges are renewed every year at the front desk. " + " ".join(PAYLOADS)
XSS_NAME = "<img src=x onerror=window.__xss=4>.txt"
PASSWORD = "correct horse battery"
# The app's root element: no page run going on, and the browser connected to the server.
IDLE = ("[data-testid='stApp'][data-test-script-state='notRunning']"
        "[data-test-connection-state='CONNECTED']")
MESSAGE = "[data-testid='stChatMessage']"
DIALOG = "[role='dialog']"


# ----- the server ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run ui/app.py`` on a free loopback port; its output goes to a log file."""

    def __init__(self, url: str, port: int, docs: Path, indexes: Path, proc: subprocess.Popen,
                 log: Path) -> None:
        self.url, self.port, self.docs, self.indexes = url, port, docs, indexes
        self.proc, self.log = proc, log

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve(tmp_path: Path, embedder, name: str, users: tuple[tuple[str, bool], ...] = (),
          toml: str = "", **env_extra: str) -> Server:  # noqa: ANN001
    """Index a copy of corpus/, make ``users`` (name, admin), start the app on a free port.

    ``toml``: the server's settings file. The server's output is written to
    ARTIFACTS/``name``-server.log.
    """
    from ragpipe import accounts
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are needed: `apt-get install chromium "
                    "chromium-driver` (`make system-deps` installs them)")
    docs, indexes = tmp_path / "docs", tmp_path / "indexes"
    shutil.copytree(CORPUS, docs)
    env = {**os.environ, "RAGPIPE_PATHS_INDEXES": str(indexes),
           "RAGPIPE_PATHS_MODELS": str(ROOT / "models"), "RAGPIPE_LLM_MODEL": "smollm2-135m",
           "RAGPIPE_LLM_N_CTX": "2048", "RAGPIPE_LLM_MAX_TOKENS": "48", "HF_HUB_OFFLINE": "1",
           **env_extra}
    if toml:
        (tmp_path / "ragpipe.toml").write_text(toml)
        env["RAGPIPE_CONFIG"] = str(tmp_path / "ragpipe.toml")
    settings = load_settings(overrides={"paths.indexes": indexes}, environ={})
    Pipeline(settings, "default", embedder=embedder).ingest(docs)
    for user, admin in users:
        accounts.for_indexes(indexes).add(user, PASSWORD, admin=admin)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"{name}-server.log"
    port = free_port()
    with open(log, "wb") as out:  # a file, not a pipe nobody reads (a full pipe blocks)
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "app.py"),
             "--server.port", str(port)],  # address, headless, stats: .streamlit/config.toml
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", port, docs, indexes, proc, log)
    deadline = time.monotonic() + LONG
    while True:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited ({proc.returncode}): {server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=5) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"streamlit did not answer within {LONG:.0f} s: {server.log_tail()}")
        time.sleep(0.5)


@pytest.fixture
def server(tmp_path, embedder, request):
    s = serve(tmp_path, embedder, request.node.name)
    yield s
    s.stop()


# ----- the browser -----------------------------------------------------------------------------

def size_page(driver, width: int, height: int) -> None:  # noqa: ANN001
    """Make the page itself (not the window around it) ``width`` × ``height``.

    The window is sized for it (so a tab it opens is that size too); below the narrowest
    window Chromium allows (500 px), the page is emulated at that size.
    """
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.set_window_size(width, height)
    dw, dh = driver.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]")
    if dw or dh:
        driver.set_window_size(width + dw, height + dh)
    if driver.execute_script("return [window.innerWidth, window.innerHeight]") != [width, height]:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


@pytest.fixture
def driver(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--window-size={WIDTH},{HEIGHT}",
                 "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(LONG)
    d.set_script_timeout(SHORT)
    size_page(d, WIDTH, HEIGHT)
    yield d
    d.quit()


def shot(driver, name: str, docs: str | None = None) -> None:  # noqa: ANN001
    """Save a screenshot as ``name``; also as the README's ``docs`` with DOCS_SHOTS set."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    if docs and DOCS_SHOTS:
        Path(DOCS_SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / f"{name}.png", Path(DOCS_SHOTS) / f"{docs}.png")


def body(driver) -> str:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def wait(driver, test: Callable[[Any], Any], timeout: float = LONG, what: str = ""):  # noqa: ANN001, ANN201
    """Wait for ``test(driver)`` to be true; a stale or missing element is tried again.

    When the time runs out, the page as it was is saved (screenshot and text).
    """
    from selenium.common.exceptions import (
        JavascriptException,
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(
            driver, timeout, poll_frequency=0.25,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException,
                                JavascriptException)).until(test)
    except TimeoutException:
        stamp = time.strftime("%H%M%S")
        shot(driver, f"timed-out-{stamp}")
        try:
            (ARTIFACTS / f"timed-out-{stamp}.txt").write_text(f"{driver.current_url}\n"
                                                              f"{body(driver)}")
        except Exception:  # noqa: BLE001 - the page may be gone; the screenshot is kept
            pass
        raise TimeoutException(f"waited {timeout:.0f} s for {what or test}; the page: "
                               f"{ARTIFACTS}/timed-out-{stamp}.png") from None


def idle(driver, timeout: float = LONG) -> None:  # noqa: ANN001
    """Wait until no page run is going on and the browser is connected, twice in a row.

    Twice, 0.3 s apart: a click's rerun starts a moment after the click, and the
    Documents page redraws its sync status every second.
    """
    from selenium.webdriver.common.by import By

    def calm(d) -> bool:  # noqa: ANN001
        if not d.find_elements(By.CSS_SELECTOR, IDLE):
            return False
        time.sleep(0.3)
        return bool(d.find_elements(By.CSS_SELECTOR, IDLE))

    wait(driver, calm, timeout, "the app to be idle")


def find_text(driver, css: str, text: str):  # noqa: ANN001, ANN201
    """The first shown element matching ``css`` with a line starting with ``text``, or None.

    (An icon is a line of its own: its name, drawn as a ligature.)
    """
    for e in driver.find_elements("css selector", css):
        if e.is_displayed() and any(t.strip().startswith(text) for t in e.text.splitlines()):
            return e
    return None


def click(driver, find: Callable[[Any], Any], timeout: float = LONG, what: str = "") -> None:  # noqa: ANN001
    """Click what ``find(driver)`` returns, once it is there and enabled.

    Found again and clicked again when Streamlit redrew it meanwhile (stale), something
    lay over it for a moment, or it was not ready to take a click.
    """
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        StaleElementReferenceException,
    )

    def clicked(d) -> bool:  # noqa: ANN001
        e = find(d)
        if e is None or not e.is_enabled():
            return False
        try:
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", e)
            e.click()
        except (StaleElementReferenceException, ElementClickInterceptedException,
                ElementNotInteractableException):
            return False
        return True

    wait(driver, clicked, timeout, what or "an element to click")


def source_button(driver, text: str):  # noqa: ANN001, ANN201
    """The latest answer's source button whose label starts with ``text``, or None."""
    from selenium.webdriver.common.by import By

    shown = driver.find_elements(By.CSS_SELECTOR, MESSAGE)
    return find_text(shown[-1], "button", text) if shown else None


def click_text(driver, css: str, text: str, timeout: float = LONG) -> None:  # noqa: ANN001
    """Click the first shown, enabled element matching ``css`` whose line starts ``text``."""
    click(driver, lambda d: find_text(d, css, text), timeout, f"{css} '{text}'")


def go(driver, page: str) -> None:  # noqa: ANN001
    """Open a page of the app from the sidebar and wait for it to be drawn."""
    idle(driver)
    click_text(driver, "[data-testid='stSidebarNavLink']", page)
    wait(driver, lambda d: any(h.text.strip() == {"Ask": "Ask your documents"}.get(page, page)
                               for h in d.find_elements("css selector", "h1")),
         what=f"the {page} page")
    idle(driver)


def messages(driver) -> int:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    return len(driver.find_elements(By.CSS_SELECTOR, MESSAGE))


def answers(driver) -> int:  # noqa: ANN001
    """Answers shown with their passages."""
    from selenium.webdriver.common.by import By

    return len(driver.find_elements(
        By.XPATH, "//*[contains(text(), 'Sources (') or contains(text(), 'Closest passages (')]"))


def type_question(driver, question: str) -> None:  # noqa: ANN001
    """Type ``question`` into the chat box and press Enter (Enter submits)."""
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    idle(driver)

    def typed(d) -> bool:  # noqa: ANN001
        box = d.find_element(By.CSS_SELECTOR, "textarea[data-testid='stChatInputTextArea']")
        try:
            box.clear()
            box.send_keys(question)
            if box.get_attribute("value") != question:
                return False  # redrawn while typing: again
            box.send_keys(Keys.ENTER)
        except (StaleElementReferenceException, ElementNotInteractableException):
            return False
        return True

    wait(driver, typed, SHORT, "the chat box")


def ask(driver, question: str) -> None:  # noqa: ANN001
    """Ask ``question``; wait until its answer and sources are shown and the app is idle."""
    before = answers(driver)
    type_question(driver, question)
    wait(driver, lambda d: answers(d) > before, what=f"the answer to {question!r}")
    idle(driver)


def open_dialog(driver, chip: str):  # noqa: ANN001, ANN201
    """Click the latest answer's source ``chip``; wait until its dialog is drawn."""
    from selenium.webdriver.common.by import By

    idle(driver)
    click(driver, lambda d: source_button(d, chip), what=f"the source button {chip}")
    wait(driver, lambda d: "Download the original" in d.find_element(By.CSS_SELECTOR,
                                                                       DIALOG).text,
         what=f"the source dialog of {chip}")
    idle(driver)
    return driver.find_element(By.CSS_SELECTOR, DIALOG)


def close_dialog(driver) -> None:  # noqa: ANN001
    """Close the dialog with its close button (Escape as well); wait until it is gone."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def closed(d) -> bool:  # noqa: ANN001
        shown = d.find_elements(By.CSS_SELECTOR, DIALOG)
        if not shown:
            return True
        try:
            buttons = shown[0].find_elements(By.CSS_SELECTOR, "button[aria-label='Close']")
            if buttons:
                buttons[0].click()
            else:
                shown[0].send_keys(Keys.ESCAPE)
        except WebDriverException:
            pass  # redrawn or going: look again
        time.sleep(0.5)
        return not d.find_elements(By.CSS_SELECTOR, DIALOG)

    wait(driver, closed, SHORT, "the dialog to close")
    idle(driver)


def show_last_answer(driver) -> None:  # noqa: ANN001
    """Scroll the latest question to the top of the page, its answer below it."""
    driver.execute_script(
        f"const m = document.querySelectorAll(\"{MESSAGE}\");"
        "m[m.length - 2].scrollIntoView({block: 'start'});")


def viewer_drawn(driver) -> bool:  # noqa: ANN001
    """The browser's PDF viewer shows a page: two screenshots alike, and not one colour."""
    import io

    from PIL import Image

    first = driver.get_screenshot_as_png()
    time.sleep(0.5)
    if driver.get_screenshot_as_png() != first:
        return False  # still drawing
    colours = Image.open(io.BytesIO(first)).convert("L").getcolors(256) or []
    return len(colours) > 8


def assert_inert(driver) -> None:  # noqa: ANN001
    """Nothing the documents or the model wrote ran or loaded on the page."""
    from selenium.webdriver.common.by import By

    assert driver.execute_script("return window.__xss") is None
    shown = driver.find_elements(By.CSS_SELECTOR, f"{MESSAGE}, [data-testid='stSidebar'], "
                                                  f"{DIALOG}")
    assert shown
    for part in shown:
        assert not part.find_elements(By.CSS_SELECTOR, "img[onerror], img[src='x'], script")
        assert not part.find_elements(By.CSS_SELECTOR, "a[href^='javascript'], img[src*='evil']")
    for part in driver.find_elements(By.CSS_SELECTOR, f"{MESSAGE}, {DIALOG}"):
        assert not part.find_elements(By.CSS_SELECTOR, "a[href]")  # not even an address
    # nothing fetched from outside (an image in a document or a reply would be)
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith(("http://127.0.0.1", "data:", "blob:")) for u in fetched), fetched


# ----- the tests -------------------------------------------------------------------------------

def test_server_listens_on_loopback_only(server):
    out = subprocess.run(["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True,
                         text=True)
    if out.returncode != 0:
        pytest.skip("ss is not available")
    addrs = {line.split()[3].rsplit(":", 1)[0] for line in out.stdout.splitlines() if line}
    assert addrs and addrs <= {"127.0.0.1", "[::1]"}, addrs


def test_upload_ask_open_source_and_come_back(server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    driver.get(server.url)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stChatInput']"),
         what="the Ask page")
    idle(driver)
    assert "?u=" in driver.current_url  # the browser's token, kept in the URL
    shot(driver, "01-ask-empty")

    # an admin uploads two files (one with markup in its name and text) and syncs
    go(driver, "Documents")
    click_text(driver, "[role='tab']", "Add documents")
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "parking.txt").write_text(PARKING)
    (upload / XSS_NAME).write_text(BADGES)
    picker = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "input[type='file']"),
                  what="the file picker")
    picker.send_keys(f"{upload / 'parking.txt'}\n{upload / XSS_NAME}")
    wait(driver, lambda d: "parking.txt" in body(d) and "xss=4>.txt" in body(d),
         what="both uploads listed")
    idle(driver)
    click_text(driver, "button", "Upload and sync")  # enabled once the files have arrived
    wait(driver, lambda d: "Sync of default done" in body(d), what="the sync to finish")
    assert "+2 added" in body(driver) and (server.docs / "parking.txt").read_text() == PARKING
    assert driver.execute_script("return window.__xss") is None
    idle(driver)
    click_text(driver, "[role='tab']", "Documents in the index")
    wait(driver, lambda d: "8 of 8 files" in body(d), what="the documents table")
    idle(driver)
    shot(driver, "02-documents", docs="documents")

    # an employee asks about the new file and opens its source
    go(driver, "Ask")
    ask(driver, "Who issues parking permits for the Rotterdam office?")
    text = body(driver)
    assert "parking.txt" in text and "P-12" in text
    show_last_answer(driver)
    shot(driver, "03-answer")
    dialog = open_dialog(driver, "[1] parking.txt")
    assert "Facilities" in dialog.text
    shot(driver, "04-source")
    close_dialog(driver)

    # a PDF source opens in the browser's own viewer, at the cited page
    ask(driver, "Which form do I use to claim travel expenses?")
    assert "TR-7" in body(driver)
    show_last_answer(driver)
    shot(driver, "05-answer-pdf", docs="ask")
    chip = source_button(driver, "[1] travel-policy.pdf")
    assert chip is not None, "the first source is the travel policy"
    page = chip.text.rsplit("page ", 1)[1].strip()
    open_dialog(driver, "[1] travel-policy.pdf")
    frame = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"{DIALOG} iframe"),
                 SHORT, "the PDF button's frame")
    driver.switch_to.frame(frame)
    wait(driver, lambda d: d.find_element(By.ID, "open").is_displayed(), SHORT, "the PDF button")
    driver.switch_to.default_content()
    shot(driver, "06-source-pdf", docs="source")
    main = driver.current_window_handle
    driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, f"{DIALOG} iframe"))
    click(driver, lambda d: d.find_element(By.ID, "open"), SHORT, "Open the PDF")
    driver.switch_to.default_content()
    wait(driver, lambda d: len(d.window_handles) == 2, SHORT, "the PDF's tab")
    driver.switch_to.window(next(h for h in driver.window_handles if h != main))
    assert driver.current_url.startswith("blob:http://127.0.0.1")
    assert driver.current_url.endswith(f"#page={page}")
    wait(driver, viewer_drawn, SHORT, "the PDF viewer to draw the page")
    shot(driver, "07-pdf-at-page", docs="pdf-at-page")
    driver.close()
    driver.switch_to.window(main)
    close_dialog(driver)

    # markup in a document, its file name and the answer does nothing
    ask(driver, "How often are visitor badges renewed?")
    assert_inert(driver)
    assert "onerror" in body(driver)  # shown, as text
    badge = next((b.text.strip() for b in driver.find_elements(By.CSS_SELECTOR, MESSAGE)[-1]
                  .find_elements(By.CSS_SELECTOR, "button") if "onerror" in b.text), None)
    assert badge, "the file with markup in its name is among the answer's sources"
    dialog = open_dialog(driver, badge)
    assert "onerror" in dialog.text and "window.__xss" in dialog.text  # as text
    assert_inert(driver)
    close_dialog(driver)

    # reload: the conversation is still there; a new tab with the token lists it
    chat_url = driver.current_url
    driver.refresh()
    wait(driver, lambda d: messages(d) == 6, what="the conversation after a reload")
    idle(driver)
    assert_inert(driver)
    token = chat_url.split("u=")[1].split("&")[0]
    driver.get(f"{server.url}/?u={token}")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stChatInput']"),
         what="the Ask page")
    idle(driver)
    assert messages(driver) == 0  # a new chat; the old one is in the sidebar
    click_text(driver, "[data-testid='stSidebar'] button", "Who issues parking permits")
    wait(driver, lambda d: messages(d) == 6, what="the reopened conversation")
    idle(driver)
    shot(driver, "08-ask-reopened")

    go(driver, "Index health")
    wait(driver, lambda d: "Questions" in body(d) and "Quick check" in body(d),
         what="the health page")
    shot(driver, "09-health", docs="health")
    go(driver, "Model card")
    wait(driver, lambda d: "Embedder" in body(d) and "context window 2048" in body(d),
         what="the model card")
    shot(driver, "10-model-card", docs="model-card")
    assert driver.execute_script("return window.__xss") is None

    # a narrow window: the page reflows, nothing scrolls sideways
    size_page(driver, 420, 860)
    driver.get(chat_url)
    wait(driver, lambda d: messages(d) == 6, what="the conversation in a narrow window")
    idle(driver)
    wait(driver, lambda d: d.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"), SHORT,
         "the page to fit the narrow window")
    assert_inert(driver)
    show_last_answer(driver)  # the question about the file with markup, and its answer
    shot(driver, "11-ask-narrow", docs="narrow")


def test_sign_in_then_stop_an_answer(tmp_path, embedder, driver):
    """With accounts: sign in first; Stop during a long answer says so at once.

    The model is free again after it, and a reload asks for the sign-in again and then
    shows the account's conversation.
    """
    from selenium.webdriver.common.by import By

    # free prose and a large budget: an answer long enough to be stopped
    server = serve(tmp_path, embedder, "test_sign_in_then_stop_an_answer",
                   users=(("ann", True), ("bob", False)),
                   toml='[access.folders]\n"/" = ["everyone"]\n',  # bob may read them all
                   RAGPIPE_ANSWER_STYLE="free",
                   RAGPIPE_LLM_MAX_TOKENS="600", RAGPIPE_ANSWER_CHECK="false")

    def sign_in(name: str) -> None:
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "input[aria-label='Password']"),
             what="the sign-in form")
        idle(driver)
        for label, value in (("User name", name), ("Password", PASSWORD)):
            field = driver.find_element(By.CSS_SELECTOR, f"input[aria-label='{label}']")
            field.clear()
            field.send_keys(value)
        click_text(driver, "button", "Sign in")
        wait(driver, lambda d: f"Signed in as {name}" in body(d), what="the signed-in page")
        idle(driver)

    try:
        driver.get(server.url)
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                                               "input[aria-label='Password']"),
             what="the sign-in form")
        idle(driver)
        text = body(driver)
        assert "Sign in" in text and "travel" not in text.lower()  # nothing before sign-in
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stChatInput']")
        shot(driver, "12-sign-in", docs="sign-in")
        sign_in("bob")
        assert not find_text(driver, "[data-testid='stSidebarNavLink']", "Documents")  # admins

        type_question(driver, "Describe everything the travel policy says, in detail.")
        wait(driver, lambda d: "▌" in body(d), what="the answer to stream")
        click_text(driver, "button", "Stop", SHORT)
        wait(driver, lambda d: "Stopped before the answer was finished." in body(d), SHORT,
             "the stopped answer's line")
        idle(driver)
        assert "▌" not in body(driver)
        shot(driver, "13-stopped")
        ask(driver, "Which form do I use to claim travel expenses?")  # the model is free
        assert messages(driver) == 4

        driver.refresh()  # the session ends with the page: sign in again
        sign_in("bob")
        click_text(driver, "[data-testid='stSidebar'] button", "Describe everything")
        wait(driver, lambda d: messages(d) == 4, what="the account's conversation")
        assert "Stopped before the answer was finished." in body(driver)
    finally:
        server.stop()
