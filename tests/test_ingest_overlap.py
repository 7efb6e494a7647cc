"""Overlapped ingest (parse while a batch embeds, results in plan order) = the sequential path."""

from __future__ import annotations

import random
import shutil
import sqlite3

import numpy as np
import pytest
from conftest import CORPUS

from ragpipe.datatypes import Outcome
from ragpipe.pipeline.sync import in_order

WORDS = ("ledger invoice carrier pallet customs depot freight manifest route driver "
         "warehouse audit refund policy contract tariff quota parcel cargo dock").split()


def write_folder(folder, n: int = 30) -> None:
    """The corpus plus ``n`` text files of very different lengths, a duplicate, a bad PDF."""
    shutil.copytree(CORPUS, folder)
    rng = random.Random(7)
    for i in range(n):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18))) + "."
                     for _ in range(rng.choice((1, 3, 12, 40)))]
        (folder / f"note-{i:02d}.txt").write_text("\n\n".join(sentences).capitalize())
    (folder / "note-copy.txt").write_bytes((folder / "note-03.txt").read_bytes())
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a PDF body\n")


def index_rows(pipe) -> tuple[list, list, np.ndarray]:
    """Files, chunk rows with their ids, and vectors in id order."""
    conn = sqlite3.connect(pipe.store.path / "index.sqlite")
    try:
        files = conn.execute("SELECT path, sha256, outcome, chunks FROM files ORDER BY path"
                             ).fetchall()
        rows = conn.execute("SELECT id, sha256, ordinal, page, start, end, text, vector "
                            "FROM chunks ORDER BY id").fetchall()
    finally:
        conn.close()
    vectors = np.stack([np.frombuffer(r[7], dtype=np.float32) for r in rows])
    return files, [r[:7] for r in rows], vectors


@pytest.mark.e2e
def test_overlapped_ingest_equals_the_sequential_path(tmp_path, settings, embedder):
    from ragpipe.pipeline import Pipeline

    folder = tmp_path / "docs"
    write_folder(folder)
    out = {}
    for name, workers, overlap in (("seq", 1, False), ("overlap", 2, True)):
        settings.ingest.workers = workers
        pipe = Pipeline(settings, name, embedder=embedder)
        pipe.embed_batch_chunks = 20  # many batches, both runtimes (embedding.py)
        pipe.overlap_embedding = overlap
        stats = pipe.ingest(folder)
        out[name] = (stats, index_rows(pipe))
    (seq, (f1, c1, v1)), (par, (f2, c2, v2)) = out["seq"], out["overlap"]
    assert [r.path for r in seq.failed] == ["broken.pdf"]
    assert any(o == Outcome.PARSE_ERROR.value for _, _, o, _ in f1)
    assert seq.added == par.added and len(seq.added) == 37
    assert seq.chunks_added == par.chunks_added > 60
    assert f1 == f2
    assert c1 == c2  # same chunks under the same ids
    assert np.array_equal(v1, v2)  # the same batches, so the same float bits
    # ids follow the plan (path order), not the order workers finished in
    first_id = {}
    for cid, sha, *_ in c1:
        first_id.setdefault(sha, cid)
    owner: dict[str, str] = {}  # content -> the first path (in path order) that holds it
    for path, sha, _, n in f1:
        if n:
            owner.setdefault(sha, path)
    stored = sorted(owner.values(), key=lambda p: first_id[next(
        s for s, o in owner.items() if o == p)])
    assert stored == sorted(stored)


def test_in_order_releases_results_in_plan_order():
    order = [f"f{i}" for i in range(20)]
    done = order[:]
    random.Random(3).shuffle(done)
    results = [(rel, None, Outcome.OK, "") for rel in done]
    assert [r[0] for r in in_order(iter(results), order)] == order
