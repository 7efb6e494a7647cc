"""End-to-end: the real corpus, the real MiniLM embedder, real FAISS/SQLite, real GGUF models."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import CORPUS, ROOT
from corpus_facts import FACTS

from ragpipe.datatypes import Outcome
from ragpipe.errors import IndexNotFound
from ragpipe.pipeline import Pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def corpus_pipeline(tmp_path_factory, embedder, small_llm):
    from ragpipe.settings import load_settings

    tmp = tmp_path_factory.mktemp("e2e")
    settings = load_settings(
        overrides={"paths.indexes": tmp / "indexes", "paths.models": ROOT / "models",
                   "llm.model": "smollm2-135m", "llm.n_ctx": 2048, "llm.max_tokens": 64,
                   "answer.style": "extract", "answer.passages": 1},
        environ={},
    )
    pipe = Pipeline(settings, "corpus", embedder=embedder, generator=small_llm)
    stats = pipe.ingest(CORPUS)
    assert not stats.failed, stats.failed
    return pipe


def test_every_corpus_file_is_read(corpus_pipeline):
    reports = corpus_pipeline.store.files()
    names = sorted(p.name for p in CORPUS.iterdir() if p.is_file())
    assert sorted(r.path for r in reports) == names
    for r in reports:
        assert r.outcome == Outcome.OK, r
        assert r.chunks > 0


@pytest.mark.parametrize("question,expected_file,phrase", FACTS)
def test_search_ranks_the_right_file_first(corpus_pipeline, question, expected_file, phrase):
    hits = corpus_pipeline.search(question, k=5)
    assert hits[0].source == expected_file, [h.location for h in hits]
    assert any(phrase in h.text for h in hits if h.source == expected_file)


def test_hits_carry_pages_and_exact_offsets(corpus_pipeline):
    from ragpipe.ingest import read_document

    hits = corpus_pipeline.search("per diem allowance Tier 1 city", k=3)
    pdf_hits = [h for h in hits if h.source == "travel-policy.pdf"]
    assert pdf_hits and all(h.page and h.page >= 1 for h in pdf_hits)
    doc, _ = read_document(CORPUS / "travel-policy.pdf", "travel-policy.pdf")
    for h in pdf_hits:
        page = next(p for p in doc.pages if p.number == h.page)
        assert page.text[h.start : h.end] == h.text


def test_hidden_html_text_is_not_indexed(corpus_pipeline):
    hits = corpus_pipeline.search("INTERNAL-DRAFT-MARKER", k=10)
    assert all("INTERNAL-DRAFT-MARKER" not in h.text for h in hits)


def test_ask_streams_with_valid_citations(corpus_pipeline):
    stream = corpus_pipeline.stream("How many characters must a password have at least?")
    assert stream.hits, "passages are known before the first token"
    pieces = list(stream)
    assert len(pieces) > 1, "the answer should arrive in several pieces"
    answer = stream.answer
    assert answer.text
    assert answer.prompt_tokens <= 2048 - 64
    sources = {p.name for p in CORPUS.iterdir()}
    for c in answer.citations:
        assert 1 <= c.n <= len(answer.hits)
        assert c.hit is answer.hits[c.n - 1]
        assert c.hit.source in sources


def test_missing_index_names_the_command(settings, embedder):
    pipe = Pipeline(settings, "nope", embedder=embedder)
    with pytest.raises(IndexNotFound, match="ragpipe ingest"):
        pipe.search("anything")


def test_empty_index_gives_a_clear_answer(settings, embedder, small_llm, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    pipe = Pipeline(settings, "empty", embedder=embedder, generator=small_llm)
    pipe.ingest(empty)
    assert pipe.search("anything") == []
    answer = pipe.ask("What is the travel policy?")
    assert not answer.found
    assert "do not contain" in answer.text


def test_default_model_answers_with_a_citation_of_the_right_file(corpus_pipeline):
    """The product promise with the default model (Qwen2.5 0.5B): right fact, right source."""
    from ragpipe import models
    from ragpipe.generation import LlamaCppGenerator

    path = models.resolve_gguf("qwen2.5-coder-0.5b", ROOT / "models")
    pipe = Pipeline(corpus_pipeline.settings, "corpus", embedder=corpus_pipeline.embedder,
                    generator=LlamaCppGenerator(path, n_ctx=4096, threads=2))
    pipe.settings.llm.max_tokens = 96
    answer = pipe.ask("What is the minimum number of characters a password must have?")
    assert "14" in answer.text
    assert answer.citations, answer.text
    assert {c.hit.source for c in answer.citations} == {"it-security-policy.pdf"}
    # A yes/no question is answered with the passage's deciding sentence ("Yes" is not in it).
    answer = pipe.ask("Can I fly business class to Brussels?")
    assert answer.found and "6 hours" in answer.text, (answer.text, answer.withheld)
    assert {c.hit.source for c in answer.citations} == {"travel-policy.pdf"}


def test_cli_ingest_search_ask(tmp_path):
    """The installed command, as a user runs it."""
    env = {"RAGPIPE_PATHS_INDEXES": str(tmp_path / "idx"),
           "RAGPIPE_PATHS_MODELS": str(ROOT / "models"),
           "RAGPIPE_LLM_MODEL": "smollm2-135m", "RAGPIPE_LLM_MAX_TOKENS": "32",
           "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    exe = [sys.executable, "-m", "ragpipe"]
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    run = lambda *a: subprocess.run([*exe, *a], env=env, capture_output=True, text=True,  # noqa: E731
                                    timeout=300, cwd=tmp_path)
    r = run("ingest", str(docs), "--index", "t")
    assert r.returncode == 0, r.stderr
    assert "+6 added" in r.stdout
    r = run("search", "Which form do I use to claim travel expenses?", "--index", "t", "-k", "2")
    assert r.returncode == 0, r.stderr
    assert "travel-policy.pdf" in r.stdout.splitlines()[0]
    r = run("ask", "Which form do I use to claim travel expenses?", "--index", "t")
    assert r.returncode == 0, r.stderr
    assert "Sources:" in r.stdout and "travel-policy.pdf" in r.stdout
    r = run("search", "x", "--index", "missing")
    assert r.returncode == 2
    assert "ragpipe ingest" in r.stderr and "Traceback" not in r.stderr
