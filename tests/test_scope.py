"""A question scoped to a folder, a type or chosen documents: the filter reaches retrieval."""

from __future__ import annotations

import json

import pytest

from ragpipe.cli import main
from ragpipe.filters import Filter

pytestmark = pytest.mark.e2e

NEW = "Travel claims use form TR-7, submitted within 30 days of the trip."
OLD = "Travel claims used form TR-2, submitted within 60 days of the trip (until 2019)."


@pytest.fixture
def pipe(settings, embedder, small_llm, tmp_path):
    from ragpipe.pipeline import Pipeline

    docs = tmp_path / "docs"
    (docs / "policies").mkdir(parents=True)
    (docs / "archive").mkdir()
    (docs / "policies" / "travel.md").write_text(NEW)
    (docs / "archive" / "travel-2019.txt").write_text(OLD)
    p = Pipeline(settings, "default", embedder=embedder, generator=small_llm)
    p.sync(docs)
    return p


QUESTION = "Which form do travel claims use?"


@pytest.mark.parametrize("where, source", [
    ({"path": "archive/"}, "archive/travel-2019.txt"),
    (Filter(kinds=("md",)), "policies/travel.md"),
    ({"paths": ["policies/travel.md"]}, "policies/travel.md"),
])
def test_stream_answers_from_the_scoped_files_only(pipe, where, source):
    stream = pipe.stream(QUESTION, where=where)
    assert stream.hits and {h.source for h in stream.hits} == {source}
    for _ in stream:
        pass
    ans = stream.answer
    assert {h.source for h in ans.hits + ans.also_retrieved} == {source}
    assert {c.hit.source for c in ans.citations} <= {source}
    unscoped = pipe.stream(QUESTION)
    assert len({h.source for h in unscoped.hits + unscoped.also_retrieved}) == 2


def test_ask_where_on_the_command_line(pipe, settings, monkeypatch, capsys):
    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(settings.paths.indexes))
    monkeypatch.setenv("RAGPIPE_PATHS_MODELS", str(settings.paths.models))
    monkeypatch.setenv("RAGPIPE_LLM_MODEL", "smollm2-135m")
    monkeypatch.setenv("RAGPIPE_LLM_N_CTX", "2048")
    monkeypatch.setenv("RAGPIPE_LLM_MAX_TOKENS", "24")
    assert main(["ask", QUESTION, "--where", "path=archive/", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {p["source"] for p in out["passages"]} == {"archive/travel-2019.txt"}
    assert main(["ask", QUESTION, "--where", "colour=blue"]) == 2
    assert "--where takes" in capsys.readouterr().err


def test_chosen_documents_are_exact_paths_and_folders_are_listed(pipe, tmp_path):
    from ragpipe.filters import folders_of, scope

    docs = tmp_path / "docs"
    (docs / "policies" / "travel.md.old").write_text(OLD.replace("TR-2", "TR-1"))
    pipe.sync(docs)
    chosen = scope(folders=["archive/"], documents=["policies/travel.md"])
    assert chosen == Filter(files=("policies/travel.md",))
    assert {h.source for h in pipe.search(QUESTION, k=5, where=chosen)} == {"policies/travel.md"}
    by_folder = scope(folders=["policies/"])
    assert {h.source for h in pipe.search(QUESTION, k=5, where=by_folder)} == {
        "policies/travel.md", "policies/travel.md.old"}
    assert scope() is None
    assert folders_of(["a/b/c.txt", "a/d.txt", "e.txt"]) == ["a/", "a/b/"]
