"""The Streamlit page driven headlessly with AppTest, over a real index and the real small model."""

from __future__ import annotations

import re

import pytest
from conftest import CORPUS, ROOT
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.e2e


@pytest.fixture
def ui_env(tmp_path, monkeypatch, embedder):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.setenv("RAGPIPE_PATHS_MODELS", str(ROOT / "models"))
    monkeypatch.setenv("RAGPIPE_LLM_MODEL", "smollm2-135m")
    monkeypatch.setenv("RAGPIPE_LLM_N_CTX", "2048")
    monkeypatch.setenv("RAGPIPE_LLM_MAX_TOKENS", "48")
    monkeypatch.chdir(ROOT)
    Pipeline(load_settings(), "default", embedder=embedder).ingest(CORPUS)
    return tmp_path


def test_ask_in_the_web_page_shows_answer_and_sources(ui_env):
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="index").value == "default"
    at.chat_input[0].set_value("Which form do I use to claim travel expenses?").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    roles = [m.name for m in at.chat_message]
    assert roles == ["user", "assistant"]
    answer_md = [md.value for md in at.chat_message[1].markdown]
    assert any(md.strip() for md in answer_md)
    texts = " ".join(answer_md) + " ".join(c.value for c in at.chat_message[1].caption)
    assert "travel-policy.pdf" in texts  # sources listed with file and page
    assert "TR-7" in texts  # the snippet of the right passage is shown

    at.button[0].click().run()  # clear chat
    assert len(at.chat_message) == 0


def test_no_index_tells_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path / "none"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("ragpipe ingest" in w.value for w in at.warning)


def test_document_and_answer_text_is_shown_as_written():
    import sys

    sys.path.insert(0, str(ROOT / "ui"))
    try:
        from literal import literal, snippet
    finally:
        sys.path.remove(str(ROOT / "ui"))
    # an answer copied from a document: no LaTeX, emphasis, list or colour directive
    assert literal("Costs $5 to $10 *per* day") == r"Costs \$5 to \$10 \*per\* day"
    assert literal("1. Book early\n- then :red[pay]") == (
        "1\\. Book early  \n\\- then \\:red\\[pay\\]"
    )
    page = "Claims use form TR-7 within 30 days."
    shown = snippet(page, (16, 20))
    assert shown.startswith("Claims use form") and ":orange-background[TR\\-7]" not in shown
    assert ":orange-background[TR-7]" in shown


def test_a_file_named_like_a_markdown_image_is_shown_as_text(tmp_path, monkeypatch, embedder):
    """An "offline" page must not fetch an image named by a file: its name is escaped."""
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    docs = tmp_path / "docs"
    folder = docs / "![x](https:" / "evil.example"  # the path reads ![x](https:/evil.example/…
    folder.mkdir(parents=True)
    (folder / "a.png).txt").write_text("Badges are renewed every year at the front desk.")
    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.setenv("RAGPIPE_PATHS_MODELS", str(ROOT / "models"))
    monkeypatch.setenv("RAGPIPE_LLM_MODEL", "smollm2-135m")
    monkeypatch.setenv("RAGPIPE_LLM_N_CTX", "2048")
    monkeypatch.setenv("RAGPIPE_LLM_MAX_TOKENS", "16")
    monkeypatch.chdir(ROOT)
    Pipeline(load_settings(), "default", embedder=embedder).ingest(docs)

    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=180)
    at.run()
    at.chat_input[0].set_value("How often are badges renewed?").run()
    assert not at.exception, at.exception
    shown = [md.value for md in at.chat_message[1].markdown]
    source = [md for md in shown if "evil.example" in md]
    assert source, shown  # the file is listed among the sources ...
    for md in shown:  # ... and nothing on the page is a Markdown image or link
        assert not re.search(r"(?<!\\)(!\[|\]\()", md), md


def test_file_names_are_shown_without_markup_or_hidden_characters():
    import sys

    sys.path.insert(0, str(ROOT / "ui"))
    try:
        from literal import file_name
    finally:
        sys.path.remove(str(ROOT / "ui"))
    assert file_name("![x](https:/evil.example/a.png).txt, page 2") == (
        "!\\[x\\](https\\:/evil.example/a.png).txt, page 2"
    )
    assert file_name("invoice\u202etxt.exe") == "invoice\\\\u202etxt.exe"


def test_the_page_answers_through_a_server_and_says_what_it_lacks(ui_env, monkeypatch,
                                                                  llama_server):
    """The page builds the model the settings name (here a server), as the CLI does."""
    monkeypatch.setenv("RAGPIPE_LLM_BACKEND", "openai")
    monkeypatch.setenv("RAGPIPE_ANSWER_STYLE", "extract")
    monkeypatch.setenv("RAGPIPE_ANSWER_PASSAGES", "1")
    monkeypatch.setenv("RAGPIPE_LLM_BASE_URL", llama_server)
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=180)
    at.run()
    at.chat_input[0].set_value("Which form do I use to claim travel expenses?").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    captions = " ".join(c.value for c in at.chat_message[1].caption)
    assert "copy-constrained extraction unavailable for this backend" in captions
    assert "travel-policy.pdf" in " ".join(md.value for md in at.chat_message[1].markdown)
