"""read_many: isolation (timeouts, memory cap, crashes), limits, and one result per file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pdfmaker import make_pdf

from ragpipe.datatypes import Outcome
from ragpipe.ingest import ReaderPool, ReadOptions, read_many
from ragpipe.ingest.workers import TEST_READERS_ENV
from ragpipe.settings import IngestSettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def test_readers(monkeypatch):
    """Turn on the test-only hanging, memory-hungry and crashing readers in the workers."""
    monkeypatch.setenv(TEST_READERS_ENV, "1")


def run(files, **settings):
    results = list(read_many(files, IngestSettings(**settings)))
    by_rel = {rel: (doc, outcome, msg) for rel, doc, outcome, msg in results}
    assert len(by_rel) == len(results) == len(files), "exactly one result per file"
    return by_rel


def test_hang_memory_and_crash_kill_only_their_worker(tmp_path, test_readers):
    # One worker: every later file proves the worker was replaced after each failure.
    names = ["hang.slowtest", "a.txt", "hog.memtest", "b.txt", "boom.crashtest", "c.txt"]
    for n in names:
        (tmp_path / n).write_text(f"contents of {n}\n")
    t0 = time.monotonic()
    res = run([(tmp_path / n, n) for n in names], workers=1, timeout_s=3, memory_mb=512)
    assert time.monotonic() - t0 < 30
    assert res["hang.slowtest"][1] is Outcome.TIMEOUT and "timeout_s" in res["hang.slowtest"][2]
    assert res["hog.memtest"][1] is Outcome.MEMORY_LIMIT
    assert res["boom.crashtest"][1] is Outcome.PARSE_ERROR
    assert "crashed (SIGABRT" in res["boom.crashtest"][2]
    for n in ("a.txt", "b.txt", "c.txt"):
        doc, outcome, _ = res[n]
        assert outcome is Outcome.OK and doc.pages[0].text == f"contents of {n}\n"
        assert doc.sha256 == hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()


def test_memory_cap_is_what_stops_the_hog(tmp_path, test_readers):
    # The same 4 GiB allocation succeeds without a cap (calloc'd pages cost nothing).
    (tmp_path / "hog.memtest").write_text("x")
    res = run([(tmp_path / "hog.memtest", "hog.memtest")], workers=1, memory_mb=0)
    assert res["hog.memtest"][1] is Outcome.OK


def test_files_are_parsed_in_parallel(tmp_path, test_readers):
    for n in ("one.slowtest", "two.slowtest"):
        (tmp_path / n).write_text("x")
    t0 = time.monotonic()
    res = run([(tmp_path / n, n) for n in ("one.slowtest", "two.slowtest")],
              workers=2, timeout_s=3)
    # Both hang for their full timeout; in sequence that would take twice as long.
    assert time.monotonic() - t0 < 5.5
    assert {o for _, o, _ in res.values()} == {Outcome.TIMEOUT}


def test_limits_and_missing_files(tmp_path):
    (tmp_path / "big.txt").write_text("x" * 3000)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    make_pdf(tmp_path / "ok.pdf", ["Fine."])
    files = [(tmp_path / n, n) for n in ("big.txt", "empty.txt", "folder", "pipe", "gone.txt",
                                         "ok.pdf")]
    res = run(files, max_file_mb=0.002, workers=2)
    assert res["big.txt"][1] is Outcome.TOO_LARGE and "max_file_mb" in res["big.txt"][2]
    assert res["empty.txt"][1] is Outcome.EMPTY_TEXT
    assert res["folder"][1] is Outcome.UNREADABLE
    assert res["pipe"][1] is Outcome.UNREADABLE  # a FIFO must not block the reader
    assert res["gone.txt"][1] is Outcome.VANISHED
    assert res["ok.pdf"][1] is Outcome.OK and res["ok.pdf"][0].pages[0].number == 1
    for rel, (doc, outcome, msg) in res.items():
        assert (doc is not None) == outcome.has_text
        assert outcome.has_text or msg, rel


def test_closing_early_stops_every_worker(tmp_path, test_readers):
    for n in ("a.txt", "b.slowtest", "c.slowtest"):
        (tmp_path / n).write_text("x")
    pool = ReaderPool(2, timeout_s=60, memory_mb=512, options=ReadOptions())
    results = pool.map([(tmp_path / n, n) for n in ("a.txt", "b.slowtest", "c.slowtest")])
    first = next(results)
    assert first[0] == "a.txt"
    procs = [w.proc for w in pool.workers]
    results.close()
    pool.close()
    assert procs and all(p.poll() is not None for p in procs)
    assert pool.workers == []


def test_works_from_a_script_without_a_main_guard(tmp_path):
    # multiprocessing's spawn would re-run this script in every worker and fail.
    (tmp_path / "doc.txt").write_text("hello from a script\n")
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\nfrom ragpipe.ingest import read_many\n"
        f"res = list(read_many([(Path({str(tmp_path / 'doc.txt')!r}), 'doc.txt')]))\n"
        "print(res[0][2].value, res[0][1].pages[0].text.strip())\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok hello from a script"
