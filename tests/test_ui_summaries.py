"""Documents' summaries in the web app, driven with AppTest over a real index.

Cached summaries in the documents table and a document's view, "Summarize this
document" on the Ask page (made once through the model's line, then reused), sentences
the check does not support flagged, document and model text shown as text. The real
SmolLM2 model makes the summaries; an obedient fake model only where the test needs a
sentence that is certainly unsupported. Two short documents keep it quick.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
from conftest import ROOT, web_app_index
from fakes import Wrapped
from streamlit.testing.v1 import AppTest
from test_ui import PAYLOADS, live

pytestmark = pytest.mark.e2e

APP = str(ROOT / "ui" / "app.py")
PARKING = ("Parking permits for the Rotterdam office are issued by Facilities at desk P-12. "
           "A permit costs EUR 40 per month and is renewed every January.")
BADGES = ("Badge renewal. Badges are renewed every year at the front desk. " + " ".join(PAYLOADS)
          + " Lost badges are reported to Security on extension 4410.")


def ui_module(name: str):  # noqa: ANN201
    """A module of ui/ (the page's own, as its scripts import it)."""
    sys.path.insert(0, str(ROOT / "ui"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "ui"))


class Counting(Wrapped):
    """The real model behind only the generator contract, counting its calls."""

    def __init__(self, gen) -> None:  # noqa: ANN001
        super().__init__(gen)
        self.calls = 0

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        self.calls += 1
        return self.gen.stream(messages, max_tokens)


@pytest.fixture
def env(tmp_path, monkeypatch, embedder):
    """Two documents indexed; settings for the smallest model and short summaries."""

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parking.txt").write_text(PARKING + "\n")
    (docs / "badges.md").write_text(BADGES + "\n")
    web_app_index(monkeypatch, tmp_path, docs, embedder, LLM_MAX_TOKENS="32",
                  SUMMARIZE_MAX_TOKENS="64", SUMMARIZE_ROLLUP="off")
    return tmp_path


@pytest.fixture
def model(env, monkeypatch, small_llm):
    """The page's answer model: the real small one, its calls counted."""
    counting = Counting(small_llm)
    monkeypatch.setattr(ui_module("state"), "shared_generator", lambda *a, **k: counting)
    return counting


def pipeline(gen):  # noqa: ANN001, ANN201
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    return Pipeline(load_settings(), "default", generator=gen)


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=240).run()


def shown(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown] + [c.value for c in at.caption]


def test_cached_summaries_in_the_documents_table_and_view(model):
    run = pipeline(model).summarize()  # a batch run: the summaries the page reads
    assert sorted(run.summarized) == ["badges.md", "parking.txt"]
    made = pipeline(model).summaries()
    calls = model.calls
    at = app()
    at.switch_page("app_pages/documents.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("path")
    assert list(table.loc[["badges.md", "parking.txt"], "summary"]) == ["yes", "yes"]
    sv = ui_module("summary_view")
    for path in ("badges.md", "parking.txt"):
        assert table.loc[path, "supported"] == sv.share(made[path])  # e.g. "80% (8/10)"
    at.selectbox(key="doc-target").set_value("badges.md").run()
    s = made["badges.md"]
    assert sv.marked(s) in shown(at)  # the summary, its unsupported sentences flagged
    assert sv.support_line(s) in shown(at)
    literal = ui_module("literal")
    quotes = [f"the document · {literal.snippet(p.quote, None, sv.QUOTE_CHARS)}"
              for x in s.sentences for p in x.sources]
    assert quotes and all(q in shown(at) for q in quotes)  # each sentence's sources
    for md in shown(at):
        assert not live(md), md
    assert model.calls == calls  # shown from the cache


def test_summarize_this_document_on_ask_makes_it_once(model):
    at = app()
    at.multiselect(key="scope-docs-default").set_value(["parking.txt"]).run()
    at.button(key="summarize-scope").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    made = model.calls
    assert made >= 1  # no summary yet: made now, through the model's line
    s = pipeline(model).summary_of("parking.txt")
    assert s is not None and s.draft.strip()  # and cached
    sv = ui_module("summary_view")
    assert sv.marked(s) in shown(at) and any("Summary of parking.txt" in m for m in shown(at))
    assert len(ui_module("state").queue(pipeline(model).settings)) == 0  # its turns left

    again = app()  # another session asks for it: the cached one, no model call
    again.multiselect(key="scope-docs-default").set_value(["parking.txt"]).run()
    again.button(key="summarize-scope").click().run()
    assert sv.marked(s) in shown(again) and model.calls == made
    again.button(key="summary-close").click().run()
    assert not any("Summary of parking.txt" in m for m in shown(again))

    # a source of an answer shows its document's cached summary
    again.chat_input[0].set_value("How much does a parking permit cost?").run()
    chip = next(b for b in again.button if b.label.startswith("[1] parking.txt"))
    chip.click().run()
    assert not again.exception, again.exception
    assert any("Summary of parking.txt" in m for m in shown(again))
    assert sv.marked(s) in shown(again)


def test_unsupported_sentences_are_flagged_and_model_markup_is_inert(env, monkeypatch):
    """A model that invents an amount and repeats a document's markup: flagged, inert."""
    from fakes import ObedientModel

    reply = ("Lost badges are reported to Security on extension 4410. Badge renewal costs "
             "EUR 95. " + " ".join(PAYLOADS))
    monkeypatch.setattr(ui_module("state"), "shared_generator",
                        lambda *a, **k: ObedientModel(reply))
    at = app()
    at.chat_input[0].set_value("Where are lost badges reported?").run()
    chip = next(b for b in at.button if b.label.startswith("[1] badges.md"))
    chip.click().run()
    at.button(key=next(b.key for b in at.button if b.key.startswith("summarize-src-"))).click()
    at.run()  # out of the source view: the Ask page makes it
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    s = pipeline(ObedientModel(reply)).summary_of("badges.md")
    assert s is not None
    texts = [x.text for x in s.sentences]
    assert "Badge renewal costs EUR 95." in texts, texts
    invented = texts.index("Badge renewal costs EUR 95.")
    assert not s.sentences[invented].supported
    assert any(x.supported and "4410" in x.text for x in s.sentences)
    page = "\n".join(shown(at))
    sv = ui_module("summary_view")
    assert f":red-background[Badge renewal costs EUR 95.] {sv.FLAG}" in page
    assert ":red-background[Lost badges" not in page
    assert f"{invented + 1}\\. {sv.FLAG} Badge renewal costs EUR 95." in page  # sentence list
    why = s.sentences[invented].problem
    assert why and "Why: " + ui_module("literal").line(why) in page  # its problem, in words
    assert "onerror" in page and "evil.example" in page  # the document's payloads, quoted
    for md in shown(at):
        assert not live(md), md

    at.switch_page("app_pages/documents.py").run()  # the admin table counts it
    table = at.dataframe[0].value.set_index("path")
    assert table.loc["badges.md", "summary"] == "yes"
    assert table.loc["badges.md", "supported"] == sv.share(s)
    assert table.loc["parking.txt", "summary"] == "no" and table.loc["parking.txt",
                                                                        "supported"] == ""
    at.selectbox(key="doc-target").set_value("parking.txt").run()  # made from its view
    at.button(key="summarize-documents").click().run()
    assert not at.exception, at.exception
    made = pipeline(ObedientModel(reply)).summary_of("parking.txt")
    assert made is not None and sv.marked(made) in shown(at)
    assert at.dataframe[0].value.set_index("path").loc["parking.txt", "summary"] == "yes"


# ----- pieces, with fakes -------------------------------------------------------------------
class Pieces:
    """A model that writes two pieces per call."""

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        yield from ("a", "b")


def test_a_summary_takes_one_turn_per_model_call():
    """Between two of a summary's calls, a question that joined meanwhile goes first."""
    from ragpipe.queueing import Busy, TurnQueue

    sv = ui_module("summary_view")
    line = TurnQueue(limit=2)
    said: list[str] = []
    gen = sv.TurnPerCall(Pieces(), line, "admin", waiting=said.append)
    first = gen.stream([], 8)
    assert next(first) == "a" and len(line) == 1  # the summary's first call has the model
    question = line.join("employee")  # a question joins meanwhile
    assert not question.wait(0)
    assert list(first) == ["b"] and len(line) == 1  # the call ends: its turn is left
    assert question.wait(0)  # the question's turn, before the summary's next call
    second = threading.Thread(target=lambda: said.append("".join(gen.stream([], 8))))
    second.start()
    time.sleep(1.2)
    assert said and said[0] == "Waiting for the model: 1 question(s) ahead."
    assert second.is_alive()
    question.leave()
    second.join(5)
    assert said[-1] == "ab" and gen.calls == 2 and len(line) == 0

    full = TurnQueue(limit=1)
    taken = full.join("someone")
    with pytest.raises(Busy):  # a full line before the first call: the page says busy
        list(sv.TurnPerCall(Pieces(), full, "admin").stream([], 8))
    taken.leave()


def test_summary_markdown_is_literal_and_flags_unsupported():
    from ragpipe.summarize import DocumentSummary, SummarySentence

    sv = ui_module("summary_view")
    draft = "- Claims use *form* TR-7.\n- It costs $5 <b>.\n\n1. See [x](javascript:y)."
    sents = (SummarySentence("Claims use *form* TR-7.", True, 1.0),
             SummarySentence("It costs $5 <b>.", False, 0.2, problem="number"),
             SummarySentence("See [x](javascript:y).", True, 1.0))
    s = DocumentSummary("a.txt", "0" * 64, "m", "v", "bullets", draft, sents)
    md = sv.marked(s)
    assert md.splitlines() == [
        "\\- Claims use \\*form\\* TR-7.  ",
        f"\\- :red-background[It costs \\$5 \\<b\\>.] {sv.FLAG}  ",
        "1\\. See \\[x\\](javascript\\:y).",
    ]
    dropped = sv.marked(s, drop=True).splitlines()
    assert len(dropped) == 2 and "costs" not in " ".join(dropped)  # its bullet went too
    assert not live(md)
