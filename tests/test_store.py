"""The index on disk: round-trip, generations, shared content, checksums, locking."""

from __future__ import annotations

import numpy as np
import pytest

from ragpipe.datatypes import Chunk, Outcome
from ragpipe.errors import IndexCorrupt, IndexLocked, IndexMismatch
from ragpipe.filters import Filter
from ragpipe.store import Store, dump

DIM = 8
META = {"embedder": "fake:8", "dim": str(DIM), "chunking": "r1", "root": "/x"}


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def add(w, sha, texts, seed=0, path=None):
    chunks = [Chunk(t, 1, 0, len(t), i) for i, t in enumerate(texts)]
    vecs = np.stack([vec(seed + i) for i in range(len(texts))])
    w.put_content(sha, "txt", 1, "r1", "fake:8", chunks, vecs)
    w.set_file(path or f"{sha}.txt", sha, 10, 1, Outcome.OK, kind="txt", pages=1,
               chunks=len(texts))
    return vecs


def test_round_trip_and_search(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer(META) as w:
        vecs = add(w, "a", ["alpha one", "alpha two"], seed=1)
        add(w, "b", ["beta"], seed=10)
        assert w.publish() == 1
    hits = store.search(vecs[1], k=3)
    assert hits[0].text == "alpha two" and hits[0].source == "a.txt" and hits[0].page == 1
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert store.stats()["chunks"] == 3 and store.stats()["vectors"] == 3
    assert store.meta()["embedder"] == "fake:8"


def test_unpublished_changes_are_invisible_and_discarded(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer(META) as w:
        add(w, "a", ["one"])
        w.publish()
    with store.writer(META) as w:
        add(w, "b", ["two"], seed=5)
        assert store.count_chunks() == 1  # a reader does not see the open transaction
    assert store.count_chunks() == 1  # not published: rolled back
    assert [g.id for g in store.generations()] == [1]


def test_identical_content_is_stored_once_and_deleted_exactly(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer(META) as w:
        v = add(w, "same", ["shared text"], path="x/one.txt")
        w.set_file("y/two.txt", "same", 10, 1, Outcome.OK, kind="txt", chunks=1)
        w.publish()
    hit = store.search(v[0], k=1)[0]
    assert hit.source == "x/one.txt" and hit.also_in == ("y/two.txt",)
    with store.writer(META) as w:
        w.remove_file("x/one.txt")
        assert w.collect() == 0  # still used by y/two.txt
        w.publish()
    assert store.search(v[0], k=1)[0].source == "y/two.txt"
    with store.writer(META) as w:
        w.remove_file("y/two.txt")
        assert w.collect() == 1
        w.publish()
    assert store.search(v[0], k=5) == []
    assert store.stats()["vectors"] == 0


def test_filter_returns_k_when_k_exist(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer(META) as w:
        for i in range(30):
            folder = "pol" if i % 3 == 0 else "other"
            add(w, f"c{i}", [f"text {i}"], seed=i, path=f"{folder}/{i}.txt")
        w.publish()
    allowed = store.chunk_ids_where(Filter(paths=("pol/",)).sql())
    hits = store.search(vec(1), k=5, allowed_ids=allowed)
    assert len(hits) == 5 and all(h.source.startswith("pol/") for h in hits)


def test_corrupt_faiss_file_is_never_served(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer(META) as w:
        v = add(w, "a", ["one"])
        w.publish()
        add(w, "b", ["two"], seed=3)
        w.publish()
    gen = store.current_generation()
    path = store.path / gen.faiss_file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = Store(store.path)
    hits = fresh.search(v[0], k=2)  # falls back to generation 1
    assert [h.text for h in hits] == ["one"]
    assert fresh.warnings and "checksum" in fresh.warnings[0]
    with pytest.raises(IndexCorrupt):
        fresh.load_faiss(gen)


def test_one_writer_at_a_time(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer(META):
        with pytest.raises(IndexLocked, match="pid"):
            with Store(tmp_path / "idx").writer(META):
                pass


def test_embedder_mismatch_is_refused(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer(META) as w:
        add(w, "a", ["one"])
        w.publish()
    store.check_embedder("fake:8")
    with pytest.raises(IndexMismatch, match="fake:8"):
        store.check_embedder("other:384")


def test_dump_ignores_ids(tmp_path):
    s1, s2 = Store(tmp_path / "one"), Store(tmp_path / "two")
    with s1.writer(META) as w:
        add(w, "a", ["x"])
        add(w, "b", ["y"], seed=4)
        w.publish()
    with s2.writer(META) as w:
        add(w, "b", ["y"], seed=4)
        w.publish()
        add(w, "a", ["x"])
        w.publish()
    (d1, v1), (d2, v2) = dump(s1), dump(s2)
    assert d1 == d2
    assert np.allclose(v1, v2)


def test_an_index_of_an_unknown_format_is_refused_and_left_alone(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer(META) as w:
        add(w, "a", ["one"])
        w.publish()
    assert store.meta()["format_version"] == "2"
    with store.snapshot() as conn:  # as written by a later ragpipe, with its own tables
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'format_version'")
        conn.execute("DROP TABLE chunk_windows_fts")
        conn.execute("CREATE VIRTUAL TABLE chunk_context_fts USING fts5(text)")
        tables = "SELECT name, sql FROM sqlite_master ORDER BY name"
        before = conn.execute(tables).fetchall()
    with pytest.raises(IndexMismatch, match="has format 3"):
        with store.writer(META):
            pass
    with store.snapshot() as conn:  # not even this version's schema was applied
        assert conn.execute(tables).fetchall() == before
    assert store.meta()["format_version"] == "3" and store.count_chunks() == 1


def test_a_writer_keeps_its_own_format_whatever_meta_it_is_given(tmp_path):
    store = Store(tmp_path / "idx")
    with store.writer({**META, "format_version": "1"}) as w:  # e.g. store.meta() of an old index
        add(w, "a", ["one"])
        w.publish()
    assert store.meta()["format_version"] == "2"
