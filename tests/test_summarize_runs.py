"""Summarize runs with the real small models: long documents, resumption after SIGKILL,
an index's sync followed, failures reported, reasoning kept out, key facts kept."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import Wrapped

from ragpipe import models
from ragpipe.chunking import Chunker
from ragpipe.cli import main
from ragpipe.datatypes import Document, Page
from ragpipe.eval_workplace import has_key_point
from ragpipe.generation import LlamaCppGenerator
from ragpipe.pipeline import Pipeline
from ragpipe.summarize import SummaryOptions, summarize_document

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
CITIES = ["Utrecht", "Lyon", "Porto", "Graz", "Aarhus", "Brno", "Cork", "Turku", "Ghent"]
ITEMS = ["pallets", "cartons", "drums", "crates", "reels", "bales", "sacks", "tubes"]


def note(i: int, sentences: int = 8) -> str:
    """A short, distinct generated document."""
    rng = random.Random(i)
    return " ".join(
        f"The {rng.choice(CITIES)} depot ships {rng.randint(10, 900)} {rng.choice(ITEMS)} "
        f"every {rng.choice(['Monday', 'Tuesday', 'Friday'])} for customer {i}-{k}."
        for k in range(sentences)
    )


def write_docs(folder: Path, n: int, sentences: int = 8) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"note-{i:02d}.txt" for i in range(n)]
    for i, name in enumerate(names):
        (folder / name).write_text(note(i, sentences) + "\n", encoding="utf-8")
    return names


def chunks_for(text: str, size: int = 100):
    doc = Document("doc.txt", (Page(None, text),), "txt")
    return Chunker(lambda t: len(t) // 4 + 1, size, 0, size).split(doc)


class Recording(Wrapped):
    """The real model, text only, recording the size of every prompt it is given."""

    def __init__(self, gen) -> None:  # noqa: ANN001
        super().__init__(gen, text_only=True)
        self.prompts: list[int] = []

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        self.prompts.append(self.gen.count_prompt_tokens(messages))
        yield from self.gen.stream(messages, max_tokens)


class ThinkingBackend(Recording):
    """Fault injection: the real model behind only the generator contract, reasoning first
    (a reasoning model's <think> block, tags split across pieces)."""

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        yield from ("<thi", "nk>Count: 42 items, EUR 9,999 in total.</th", "ink>")
        yield from super().stream(messages, max_tokens)


class FailsOn(Recording):
    """Fault injection: a model error on the document named ``name``."""

    def __init__(self, gen, name: str) -> None:  # noqa: ANN001
        super().__init__(gen)
        self.fails_on = name

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        if self.fails_on in messages[-1]["content"]:
            raise RuntimeError("llama_decode returned -3")
        yield from super().stream(messages, max_tokens)


@pytest.fixture(scope="module")
def tiny_llm():
    """SmolLM2 with a 512-token window: a page of text is longer than it."""
    path = models.resolve_gguf("smollm2-135m", ROOT / "models")
    return LlamaCppGenerator(path, n_ctx=512, threads=2)


def test_a_document_longer_than_the_window_is_summarized_within_the_budget(tiny_llm):
    text = " ".join(note(i, 6) for i in range(16))
    rec = Recording(tiny_llm)
    assert tiny_llm.count_prompt_tokens([{"role": "user", "content": text}]) > 3 * 512
    opts = SummaryOptions("brief", "smollm2-135m", max_tokens=48, group_tokens=1024)
    s = summarize_document(rec, "doc.txt", "0" * 64, chunks_for(text), opts)
    assert s.map_calls > 3 and s.reduce_calls >= 1
    assert len(rec.prompts) == s.map_calls + s.reduce_calls
    assert max(rec.prompts) <= 512 - 48  # every prompt fits n_ctx - max_tokens
    assert s.draft.strip() and s.sentences


def test_planted_key_facts_mostly_reach_the_summary(small_llm):
    text = (
        "Office move notice. The Rotterdam office moves to the Maas Tower on 14 March. "
        "Every employee packs their desk into crates booked on form MV-12 in the CrateDesk "
        "portal. The Facilities Coordinator approves each booking within 2 working days. "
        "The removal budget is EUR 4,800 and is held by the Office Manager."
    )
    facts = ["14 March", "MV-12", "CrateDesk", "2 working days", "EUR 4,800"]
    opts = SummaryOptions("detailed", "smollm2-135m", max_tokens=160)
    s = summarize_document(small_llm, "move.txt", "0" * 64, chunks_for(text), opts)
    found = [f for f in facts if has_key_point(s.text(), f)]
    assert len(found) >= 3, (found, s.draft)  # loose: a 135M model, most of five facts
    assert s.support_share >= 0.5, s.draft


def test_index_run_follows_the_sync(settings, embedder, small_llm, tmp_path):
    folder = tmp_path / "docs"
    write_docs(folder, 3)
    settings.summarize.max_tokens = 64
    rec = Recording(small_llm)
    pipe = Pipeline(settings, "notes", embedder=embedder, generator=rec)
    pipe.sync(folder)
    first = pipe.summarize()
    assert sorted(first.summarized) == ["note-00.txt", "note-01.txt", "note-02.txt"]
    out = first.out
    assert out == settings.index_dir("notes") / "summaries"
    assert {r["source"] for r in _records(out)} == set(first.summarized)
    assert pipe.summary_of("note-01.txt").sha256 == hashlib.sha256(
        (folder / "note-01.txt").read_bytes()).hexdigest()

    (folder / "note-01.txt").write_text(note(50) + "\n", encoding="utf-8")
    (folder / "note-02.txt").unlink()
    (folder / "note-03.txt").write_text(note(60) + "\n", encoding="utf-8")
    pipe.sync(folder)
    calls = len(rec.prompts)
    assert pipe.summary_of("note-01.txt") is None  # its content changed
    one = pipe.summarize_document("note-03.txt")  # "summarize this document": made now
    assert len(rec.prompts) > calls and pipe.summary_of("note-03.txt") == one
    calls = len(rec.prompts)
    assert pipe.summarize_document("note-03.txt") == one and len(rec.prompts) == calls

    second = pipe.summarize()
    assert second.summarized == ("note-01.txt",)
    assert sorted(second.reused) == ["note-00.txt", "note-03.txt"]
    assert second.removed == 2  # the old note-01 and the deleted note-02
    assert {r["source"] for r in _records(out)} == {"note-00.txt", "note-01.txt", "note-03.txt"}
    assert sorted(p.name for p in (out / "docs").iterdir()) == [
        "note-00.txt.md", "note-01.txt.md", "note-03.txt.md"]
    assert "note-02" not in (out / "index.md").read_text()
    assert set(pipe.summaries()) == {"note-00.txt", "note-01.txt", "note-03.txt"}

    third = pipe.summarize(where={"path": "note-00"})  # part of the set: nothing pruned
    assert third.reused == ("note-00.txt",) and not third.summarized and third.removed == 0
    assert pipe.summary_of("note-01.txt") is not None


def test_a_failing_document_is_reported_and_reasoning_never_reaches_a_summary(
    settings, small_llm, tmp_path
):
    folder = tmp_path / "docs"
    write_docs(folder, 3)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage")
    settings.summarize.max_tokens = 64
    gen = ThinkingBackend(FailsOn(small_llm, "note-01.txt"))
    run = Pipeline(settings, generator=gen).summarize(folder, out=tmp_path / "out")
    assert sorted(run.summarized) == ["note-00.txt", "note-02.txt"]
    failed = dict(run.failed)
    assert "llama_decode returned -3" in failed["note-01.txt"]
    assert failed["broken.pdf"].startswith("parse_error")
    every = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "9,999" not in every and "think>" not in every
    assert "broken.pdf" in (tmp_path / "out" / "index.md").read_text()  # not summarized: why


def test_exit_code_is_non_zero_only_when_nothing_was_summarized(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage")
    code = main(["--set", "summarize.nice=0", "--set", f"paths.indexes={tmp_path}",
                 "summarize", str(folder), "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 1 and "no document could be summarized" in out.err
    assert "broken.pdf: parse_error" in out.out
    assert main(["summarize", str(folder), "--index", "x"]) == 2


def test_killed_run_resumes_without_losing_or_redoing_work(tmp_path):
    folder, out = tmp_path / "docs", tmp_path / "out"
    names = write_docs(folder, 10, sentences=12)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "RAGPIPE_PATHS_MODELS": str(ROOT / "models"), "RAGPIPE_LLM_MODEL": "smollm2-135m",
           "RAGPIPE_LLM_N_CTX": "1024", "RAGPIPE_LLM_THREADS": "2",
           "RAGPIPE_SUMMARIZE_MAX_TOKENS": "64", "RAGPIPE_SUMMARIZE_NICE": "0"}
    cmd = [sys.executable, "-m", "ragpipe", "summarize", str(folder), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(list(out.glob(".cache/*.json"))) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "no summary written in 300 s"
        time.sleep(0.05)
    time.sleep(random.Random().uniform(0, 0.5))  # somewhere inside the next document
    proc.kill()
    proc.communicate()
    done = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in out.glob(".cache/*.json")}
    assert 2 <= len(done) < len(names)
    for md in out.rglob("*.md"):  # whatever is there is whole
        assert md.read_text().startswith("# Summary of") and md.read_text().endswith("\n")

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"reused {len(done)}," in again.stdout
    after = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in out.glob(".cache/*.json")}
    assert all(after[k] == v for k, v in done.items())  # finished ones not recomputed
    assert sorted(p.name for p in (out / "docs").iterdir()) == [n + ".md" for n in names]
    records = _records(out)
    assert sorted(r["source"] for r in records) == names
    assert all(r["sha256"] == hashlib.sha256((folder / r["source"]).read_bytes()).hexdigest()
               for r in records)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "summaries.jsonl").read_text().splitlines()]
