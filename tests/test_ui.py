"""The web app driven headlessly with AppTest, over real indexes and the real small models.

One test per flow: ask, follow-up, not found, scoped question, a conversation reopened
in a new session, feedback stored and exported, upload + sync, removal, the admin pages,
and text from documents, file names and the model shown as text.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time

import pytest
from conftest import CORPUS, ROOT, web_app_index
from streamlit.testing.v1 import AppTest

from ragpipe import appstate
from ragpipe.conversations import Conversations
from ragpipe.feedback import Feedback

pytestmark = pytest.mark.e2e

APP = str(ROOT / "ui" / "app.py")
QUESTION = "Which form do I use to claim travel expenses?"
NOT_COVERED = "What is the recipe for the canteen's lasagne?"
# Markdown or HTML that would do something if the page interpreted it.
PAYLOADS = ("<script>window.__xss=1</script>", "<img src=x onerror=\"window.__xss=2\">",
            "![tracker](http://evil.example/p.png)", "[click me](javascript:window.__xss=3)")


def live(md: str) -> list[str]:
    """Markup in a Markdown string that the page would act on (unescaped)."""
    found = re.findall(r"(?<!\\)(?:<script|<img|!\[|\]\()", md)
    found += re.findall(r"(?<!\\)\[[^\]]*(?<!\\)\]\((?:javascript|https?):", md)
    # bare addresses GFM turns into links even when escaped: "://", "www.", "@domain."
    found += re.findall(r"\\?:(?=//)|\bwww(?=\\?\.)|@(?=[\w-]+\\?\.)", md, re.IGNORECASE)
    return found


def page_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(parts)


@pytest.fixture
def ui_env(tmp_path, monkeypatch, embedder):

    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)  # uploads and removals change it
    web_app_index(monkeypatch, tmp_path, docs, embedder, LLM_MAX_TOKENS="48")
    return tmp_path


def app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at


def test_ask_follow_up_and_reopen_in_a_new_session(ui_env):
    at = app()
    assert not at.exception, at.exception
    assert at.selectbox(key="index").value == "default"
    owner = at.query_params["u"][0] if isinstance(at.query_params["u"], list) else (
        at.query_params["u"])
    ask(at, QUESTION)
    assert not at.error, [e.value for e in at.error]
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    answer = at.chat_message[1]
    shown = page_text(at)
    assert any(md.value.strip() for md in answer.markdown)
    assert "travel-policy.pdf" in shown and "TR-7" in shown  # sources: file, page, passage
    assert any(b.label.startswith("[1] travel-policy.pdf") for b in at.button)  # source chip

    ask(at, "And within how many days?")  # a follow-up in the same conversation
    assert [m.name for m in at.chat_message] == ["user", "assistant"] * 2
    convs = Conversations(appstate.db_path(ui_env / "indexes"))
    [conv] = convs.list_for(owner)
    assert conv.title == QUESTION
    follow = convs.messages(owner, conv.id)[-1]
    assert follow.detail["query"].startswith(QUESTION)  # searched with the earlier question
    assert follow.detail["model"] == "smollm2-135m"
    assert follow.detail["settings"]["llm"]["max_tokens"] == 48

    # a new session (a reload, or a restarted server) with the same browser token
    again = app(u=owner)
    assert len(again.chat_message) == 0  # opens on a new chat ...
    again.button(key=f"conv-{conv.id}").click().run()  # ... and lists the saved one
    assert [m.name for m in again.chat_message] == ["user", "assistant"] * 2
    assert "TR-7" in page_text(again)
    assert "**Question:** " + QUESTION in again.code[0].value  # the Markdown to copy
    again.text_input(key=f"title-{conv.id}").set_value("Travel *claims*")
    again.button(key="rename").click().run()
    assert again.button(key=f"conv-{conv.id}").label == "Travel \\*claims\\*"  # as typed
    again.button(key="new-chat").click().run()
    assert len(again.chat_message) == 0
    again.button(key=f"conv-{conv.id}").click().run()
    again.button(key="delete").click().run()
    assert len(again.chat_message) == 0 and convs.list_for(owner) == []

    other = app()  # another browser sees none of it
    assert not [b for b in other.button if b.key and b.key.startswith("conv-")]


def test_not_found_shows_the_closest_passages(ui_env):
    at = ask(app(), NOT_COVERED)
    [msg] = [m for m in at.chat_message if m.name == "assistant"]
    from ragpipe.prompts import NOT_FOUND

    assert msg.markdown[0].value == NOT_FOUND
    assert any(e.label.startswith("Closest passages") for e in at.expander)


def test_scoped_question_uses_only_the_chosen_files(ui_env):
    at = app()
    at.multiselect(key="scope-kinds-default").set_value(["md"]).run()
    assert "Asking md" in page_text(at)
    ask(at, "How many days of annual leave do employees get?")
    owner = at.query_params["u"]
    owner = owner[0] if isinstance(owner, list) else owner
    convs = Conversations(appstate.db_path(ui_env / "indexes"))
    [conv] = convs.list_for(owner)
    answer = convs.messages(owner, conv.id)[-1]
    assert answer.hits and {h.source.rsplit(".", 1)[1] for h in answer.hits} == {"md"}
    assert answer.detail["scope"]["kinds"] == ["md"]


def test_feedback_is_stored_and_exported(ui_env):
    at = ask(app(), QUESTION)
    owner = at.query_params["u"]
    owner = owner[0] if isinstance(owner, list) else owner
    at.feedback[0].set_value(1).run()  # thumbs up
    fb = Feedback(appstate.db_path(ui_env / "indexes"))
    [rated] = fb.all("default")
    assert rated["rating"] == 1 and rated["question"] == QUESTION
    assert rated["detail"]["model"] == "smollm2-135m" and rated["detail"]["sources"]
    [rec] = [json.loads(line) for line in fb.export_jsonl("default").splitlines()]
    assert rec["question"] == QUESTION and rec["answerable"] == rated["found"]
    # the export is evaluation data: `ragpipe eval answers` runs it
    from ragpipe.cli import main

    dataset = ui_env / "feedback.jsonl"
    dataset.write_text(fb.export_jsonl("default"))
    assert main(["eval", "answers", "--dataset", str(dataset), "--index", "default",
                 "--json", str(ui_env / "result.json")]) == 0
    result = json.loads((ui_env / "result.json").read_text())
    assert result["metrics"]["questions"] == 1
    at.switch_page("app_pages/health.py").run()
    assert not at.exception, at.exception
    assert any("1 thumbs up" in c.value for c in at.caption)
    assert any(b.label.startswith("Export as a question set") for b in at.get("download_button"))


def wait_for_sync(at: AppTest, timeout: float = 180) -> AppTest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if not [p for p in at.get("progress")]:
            return at
        time.sleep(0.5)
    raise AssertionError("the sync did not finish")


def test_upload_sync_and_remove_a_document(ui_env):
    at = app()
    at.switch_page("app_pages/documents.py").run()
    assert not at.exception, at.exception
    text = b"Parking permits for the Rotterdam office are issued by Facilities, desk P-12."
    at.file_uploader(key="uploads-0").set_value([("parking.txt", text, "text/plain"),
                                               (".hidden.txt", b"x", "text/plain")])
    at.run()  # the files arrive: the button is enabled
    at.button(key="upload").click().run()
    assert not at.exception, at.exception
    assert any(".hidden.txt" in e.value and "skips" in e.value for e in at.error)
    wait_for_sync(at)
    assert (ui_env / "docs" / "parking.txt").read_bytes() == text
    assert any("done" in s.value and "+1 added" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert "parking.txt" in list(table["path"])
    [row] = table[table["path"] == "parking.txt"].to_dict("records")
    assert row["outcome"] == "ok" and row["chunks"] == 1
    assert row["last indexed"] == time.strftime("%Y-%m-%d %H:%M")[:10] + row["last indexed"][10:]

    at.selectbox(key="doc-target").set_value("parking.txt").run()
    at.button(key="remove").click().run()
    assert not at.exception, at.exception
    assert any("Removed parking.txt" in s.value for s in at.success)
    assert not (ui_env / "docs" / "parking.txt").exists()
    assert "parking.txt" not in list(at.dataframe[0].value["path"])


def test_admin_pages_show_health_usage_and_the_model_card(ui_env):
    at = ask(app(), NOT_COVERED)
    at.switch_page("app_pages/health.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Files"] == "6" and metrics["Questions"] == "1"
    assert metrics['Answered "not found"'] == "100%"
    table = at.dataframe[0].value
    assert list(table["question"]) == [NOT_COVERED]
    at.button(key="fsck-run").click().run()
    assert any("no problems" in s.value for s in at.success)
    at.switch_page("app_pages/model_card.py").run()
    cards = [df.value for df in at.dataframe]
    shown = " ".join(" ".join(map(str, card["value"])) for card in cards)
    assert "smollm2-135m" in shown and "Apache-2.0" in shown and "384" in shown


def test_no_index_tells_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path / "none"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("ragpipe ingest" in w.value for w in at.warning)


# ----- text from documents, file names and the model is shown as text --------------------------
def test_document_text_and_file_names_render_inert(tmp_path, monkeypatch, embedder):
    """Payloads in a document and in its file name reach the page only as escaped text."""

    docs = tmp_path / "docs"
    folder = docs / "![x](https:" / "evil.example"  # the path reads ![x](https:/evil.example/…
    folder.mkdir(parents=True)
    (folder / "a.png).txt").write_text("Badges are renewed every year at the front desk.")
    (docs / "<img src=x onerror=alert(1)>.md").write_text(
        "Badge renewal: " + " ".join(PAYLOADS) + " Badges are renewed every year.")
    web_app_index(monkeypatch, tmp_path, docs, embedder, LLM_MAX_TOKENS="16")

    at = ask(app(), "How often are badges renewed?")
    shown = [md.value for md in at.markdown] + [c.value for c in at.caption]
    assert any("evil.example" in md for md in shown)  # the files are listed ...
    assert any("onerror" in md for md in shown)
    for md in shown:  # ... and nothing on the page is live markup
        assert not live(md), md
    chips = [b.label for b in at.button if b.label.startswith("[")]
    assert chips and all(not live(label) for label in chips)
    at.switch_page("app_pages/documents.py").run()
    paths = list(at.dataframe[0].value["path"])
    assert "<img src=x onerror=alert(1)>.md" in paths  # a table cell: text, exactly


def test_a_model_reply_with_markup_renders_inert(ui_env, monkeypatch):
    """A model that writes what a document told it to: links, images and HTML go nowhere."""
    from fakes import ObedientModel

    sys.path.insert(0, str(ROOT / "ui"))
    try:
        import state
    finally:
        sys.path.remove(str(ROOT / "ui"))
    reply = "Use form TR-7. " + " ".join(PAYLOADS)
    monkeypatch.setattr(state, "shared_generator", lambda *a, **k: ObedientModel(reply))
    monkeypatch.setenv("RAGPIPE_ANSWER_CHECK", "false")  # show the reply, unchecked
    at = ask(app(), QUESTION)
    [msg] = [m for m in at.chat_message if m.name == "assistant"]
    text = " ".join(md.value for md in msg.markdown)
    assert "TR" in text and "7" in text
    for md in [m.value for m in msg.markdown]:
        assert not live(md), md
    assert "javascript" not in text.lower() or "\\:" in text


def test_literal_helpers():
    sys.path.insert(0, str(ROOT / "ui"))
    try:
        from literal import file_name, literal, snippet
    finally:
        sys.path.remove(str(ROOT / "ui"))
    # an answer copied from a document: no LaTeX, emphasis, list or colour directive
    assert literal("Costs $5 to $10 *per* day") == r"Costs \$5 to \$10 \*per\* day"
    assert literal("1. Book early\n- then :red[pay]") == (
        "1\\. Book early  \n\\- then \\:red\\[pay\\]"
    )
    page = "Claims use form TR-7 within 30 days."
    shown = snippet(page, (16, 20))
    assert shown.startswith("Claims use form") and ":orange-background[TR-7]" in shown
    assert file_name("![x](https:/evil.example/a.png).txt, page 2") == (
        "!\\[x\\](https\\:/evil.example/a.png).txt, page 2"
    )
    assert file_name("invoice\u202etxt.exe") == "invoice\\\\u202etxt.exe"
    for payload in PAYLOADS:
        assert not live(literal(payload)), literal(payload)
    for address in ("see http://evil.example/x", "www.evil.example", "mail ann@evil.example"):
        assert live(address) and not live(literal(address)), literal(address)
        assert literal(address).replace("\u2060", "").replace("\\", "") == address


def test_a_source_opens_with_its_passage_and_the_pdf_at_its_page(ui_env):
    at = ask(app(), QUESTION)
    chip = next(b for b in at.button if b.label.startswith("[1] travel-policy.pdf"))
    page = int(re.search(r"page (\d+)", chip.label).group(1))
    chip.click().run()
    assert not at.exception, at.exception
    assert any(":orange-background[" in md.value for md in at.markdown)  # the supporting text
    [frame] = at.get("iframe")  # opens the original in the browser's viewer, at the page
    assert 'atob("JVBERi0' in frame.proto.srcdoc  # %PDF-
    assert f'"#page={page}"' in frame.proto.srcdoc
    assert any(d.label == "Download the original" for d in at.get("download_button"))


def test_a_question_waits_in_line_and_says_so(ui_env):
    import threading

    sys.path.insert(0, str(ROOT / "ui"))
    try:
        import state
    finally:
        sys.path.remove(str(ROOT / "ui"))
    from ragpipe.settings import load_settings

    line = state.queue(load_settings())  # the line the page's questions join
    someone_else = line.join()  # another user's question is being answered
    threading.Timer(3.0, someone_else.leave).start()
    at = ask(app(), QUESTION)
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert any("for the model (1 question(s) ahead)" in c.value for c in at.caption)
    assert len(line) == 0  # the page left the line when its answer was done


def test_a_page_drawn_while_an_answer_stops_shows_its_line(ui_env):
    """A click during an answer draws the page again at once (Streamlit's fast reruns)
    while the old run is still stopping; the page waits for the stopped answer's line
    rather than showing the question alone. A question nobody is answering any more (a
    restarted server) is shown at once."""
    import threading

    sys.path.insert(0, str(ROOT / "ui"))
    try:
        import state
    finally:
        sys.path.remove(str(ROOT / "ui"))
    from ragpipe.conversations import new_owner
    from ragpipe.settings import load_settings

    convs = Conversations(appstate.db_path(ui_env / "indexes"))
    owner = new_owner()
    orphan = convs.create(owner, "default")
    convs.add_question(owner, orphan, NOT_COVERED)
    at = app(u=owner, c=orphan)
    assert not at.exception, at.exception
    assert [m.name for m in at.chat_message] == ["user"]

    cid = convs.create(owner, "default")
    convs.add_question(owner, cid, QUESTION)
    turn = state.queue(load_settings()).join(owner)  # the stopping run still holds its turn

    def stopped() -> None:
        convs.add_error(owner, cid, QUESTION, "Stopped before the answer was finished.")
        turn.leave()

    threading.Timer(2.0, stopped).start()
    started = time.monotonic()
    at = app(u=owner, c=cid)
    assert not at.exception, at.exception
    assert time.monotonic() - started >= 2.0
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert "Stopped before the answer was finished." in page_text(at)


def test_a_full_line_answers_busy_at_once(ui_env, monkeypatch):
    monkeypatch.setenv("RAGPIPE_SERVER_QUEUE_LIMIT", "1")
    sys.path.insert(0, str(ROOT / "ui"))
    try:
        import state
    finally:
        sys.path.remove(str(ROOT / "ui"))
    from ragpipe.settings import load_settings

    line = state.queue(load_settings())
    someone_else = line.join()  # the one place is taken
    try:
        at = ask(app(), QUESTION)
    finally:
        someone_else.leave()
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert "1 questions are waiting for the model; try again" in page_text(at)
    assert line.refused == 1 and len(line) == 0


def test_a_library_model_card_is_shown_flat():
    """The shape ragpipe.models.model_card returns, as the page lays it out."""
    sys.path.insert(0, str(ROOT / "ui"))
    try:
        from views import card_rows
    finally:
        sys.path.remove(str(ROOT / "ui"))
    card = {"model": "qwen2.5-coder-0.5b", "name": "Qwen2.5 Coder 0.5B Instruct",
            "parameters": 494032768, "quantization": "Q4_K_M", "context_length": 32768,
            "chat_template": True, "licence": "apache-2.0", "file_size": 491400064,
            "general": {"general.name": "x"},
            "catalogue": {"licence": "Apache-2.0", "weights_open": "yes", "data_open": "no"}}
    rows = card_rows(card)
    assert rows["parameters"] == "494,032,768" and rows["context length"] == "32,768"
    assert rows["file size"] == "491 MB" and rows["chat template"] == "yes"
    assert rows["catalogue: weights open"] == "yes" and "general" not in " ".join(rows)


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
