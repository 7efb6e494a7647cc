"""Sign-in in the web app (AppTest): none without accounts, a gate before anything once
they exist, conversations per account, admin pages for admins only."""

from __future__ import annotations

import pytest
from conftest import CORPUS, ROOT
from streamlit.testing.v1 import AppTest

from ragpipe import accounts
from ragpipe.conversations import Conversations

pytestmark = pytest.mark.e2e

APP = str(ROOT / "ui" / "app.py")
PW = "correct horse battery"


@pytest.fixture
def env(tmp_path, monkeypatch, embedder):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.setenv("RAGPIPE_PATHS_MODELS", str(ROOT / "models"))
    monkeypatch.setenv("RAGPIPE_LLM_MODEL", "smollm2-135m")
    monkeypatch.setenv("RAGPIPE_LLM_N_CTX", "2048")
    monkeypatch.setenv("RAGPIPE_LLM_MAX_TOKENS", "32")
    monkeypatch.chdir(ROOT)
    Pipeline(load_settings(), "default", embedder=embedder).ingest(CORPUS)
    return accounts.for_indexes(tmp_path / "indexes")


def text_of(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption]
                     + [t.value for t in at.title])


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run()


def test_without_accounts_the_local_user_asks_straight_away(env):
    at = AppTest.from_file(APP, default_timeout=240).run()
    assert not at.exception, at.exception
    assert at.chat_input, "the ask page opens directly"
    assert "Single local user" in text_of(at)


def test_with_accounts_nothing_runs_before_sign_in(env, monkeypatch):
    env.add("ann", PW, admin=True)
    env.add("bob", PW, groups=["eng"])
    from ragpipe.pipeline import Pipeline

    def no_pipeline(*args, **kwargs):
        raise AssertionError("a pipeline was built before sign-in")

    monkeypatch.setattr(Pipeline, "__init__", no_pipeline)
    at = AppTest.from_file(APP, default_timeout=240).run()
    assert not at.exception, at.exception
    assert not at.chat_input and [t.value for t in at.title] == ["Sign in"]
    shown = text_of(at)
    assert "TR-7" not in shown and "travel" not in shown.lower()
    sign_in(at, "bob", "not the password")
    assert [e.value for e in at.error] == ["wrong user name or password"]
    assert not at.chat_input


def test_signed_in_conversations_belong_to_the_account(env):
    env.add("ann", PW, admin=True)
    env.add("bob", PW)
    at = AppTest.from_file(APP, default_timeout=240).run()
    sign_in(at, "bob", PW)
    assert not at.exception, at.exception
    assert at.chat_input, "signed in: the ask page"
    assert "Signed in as bob" in text_of(at)
    at.chat_input[0].set_value("Which form do I use to claim travel expenses?").run()
    assert not at.exception, at.exception
    convs = Conversations(env.path)
    assert len(convs.list_for("user:bob")) == 1 and not convs.list_for("user:ann")
    # another browser session: sign in again and the conversation is there
    again = AppTest.from_file(APP, default_timeout=240).run()
    sign_in(again, "bob", PW)
    assert not again.exception, again.exception
    assert convs.list_for("user:bob")[0].title in text_of(again) or any(
        convs.list_for("user:bob")[0].title in (b.label or "") for b in again.button)


def test_admin_pages_are_for_admins_only(env):
    env.add("ann", PW, admin=True)
    env.add("bob", PW)
    at = AppTest.from_file(APP, default_timeout=240).run()
    sign_in(at, "ann", PW)
    at.switch_page("app_pages/documents.py").run()
    assert not at.exception, at.exception
    assert any("Documents" in t.value for t in at.title)
    at = AppTest.from_file(APP, default_timeout=240).run()
    sign_in(at, "bob", PW)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/documents.py")  # not among bob's pages at all
