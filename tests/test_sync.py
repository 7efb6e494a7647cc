"""Folder sync: exact incremental changes, invalidation, crash safety, concurrency, corruption."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEmbedder

from ragpipe.datatypes import Outcome
from ragpipe.errors import IndexLocked
from ragpipe.pipeline import Pipeline
from ragpipe.settings import load_settings
from ragpipe.store import Store, dump

HERE = Path(__file__).resolve().parent
WORDS = ("invoice travel laptop policy budget contract holiday printer office badge "
         "server backup meeting salary pension parking canteen training audit vendor").split()


def text_for(i: int, version: int = 0) -> str:
    rng = random.Random(i * 1000 + version)
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
    return f"Document {i} version {version} code X{i:05d}V{version}.\n\n{body}\n"


def make_folder(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = root / f"dir{i % 7}"
        sub.mkdir(exist_ok=True)
        (sub / f"file{i:04d}.txt").write_text(text_for(i))


def pipeline(tmp_path: Path, index: str = "t", embedder=None, **overrides) -> Pipeline:
    settings = load_settings(overrides={"paths.indexes": tmp_path / "indexes", **overrides},
                             environ={})
    return Pipeline(settings, index, embedder=embedder or HashEmbedder())


class Counting:
    """Counts reads and embeddings done by a sync."""

    def __init__(self, monkeypatch):
        import ragpipe.pipeline.sync as sync_mod  # where Pipeline.sync looks up read_many

        self.reads = 0
        real = sync_mod.read_many

        def counted(files, settings=None):
            for result in real(files, settings):
                self.reads += 1
                yield result

        monkeypatch.setattr(sync_mod, "read_many", counted)
        self.embedder = HashEmbedder()
        self.embeds = self.embed_calls = 0
        real_embed = self.embedder.embed

        def embed(texts, progress=None):
            self.embed_calls += 1  # a call with no text would still load a real model
            self.embeds += len(texts)
            return real_embed(texts, progress)

        self.embedder.embed = embed  # type: ignore[method-assign]


def sources(pipe: Pipeline) -> set[str]:
    return {r.path for r in pipe.store.files() if r.outcome.has_text}


def retrievable(pipe: Pipeline, code: str) -> list[str]:
    """Sources of every chunk that mentions ``code`` in the keyword index."""
    conn = pipe.store._conn()
    rows = conn.execute(
        "SELECT f.path FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
        "JOIN files f ON f.sha256 = c.sha256 WHERE chunks_fts MATCH ?", (f'"{code}"',)
    ).fetchall()
    return sorted(r[0] for r in rows)


def test_add_change_delete_rename_duplicate(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    make_folder(folder, 20)
    count = Counting(monkeypatch)
    pipe = pipeline(tmp_path, embedder=count.embedder)
    st = pipe.sync(folder)
    assert len(st.added) == 20 and st.generation == 1

    # second run over an unchanged folder: no parsing, no embedding, no new generation
    count.reads = count.embeds = count.embed_calls = 0
    db = pipe.store.db_path
    before = (db.stat().st_mtime_ns, db.stat().st_size)
    st = pipe.sync(folder)
    assert (st.added, st.changed, st.deleted, st.renamed) == ((), (), (), ())
    assert st.unchanged == 20 and st.generation == 0
    assert count.reads == 0 and count.embed_calls == 0
    assert (db.stat().st_mtime_ns, db.stat().st_size) == before

    (folder / "dir1/file0001.txt").write_text(text_for(1, version=1))  # change
    (folder / "dir2/file0002.txt").unlink()  # delete
    (folder / "dir3/file0003.txt").rename(folder / "moved.txt")  # rename
    shutil.copy(folder / "dir4/file0004.txt", folder / "copy-of-4.txt")  # duplicate content
    (folder / "new.txt").write_text(text_for(99))  # add
    count.reads = count.embeds = 0
    dry = pipe.sync(folder, dry_run=True)
    assert dry.changed == ("dir1/file0001.txt",) and dry.deleted == ("dir2/file0002.txt",)
    assert dry.renamed == (("dir3/file0003.txt", "moved.txt"),)
    assert set(dry.added) == {"copy-of-4.txt", "new.txt"}
    assert count.reads == 0 and pipe.store.current_generation().id == 1  # wrote nothing

    st = pipe.sync(folder)
    assert st.changed == ("dir1/file0001.txt",) and st.deleted == ("dir2/file0002.txt",)
    assert st.renamed == (("dir3/file0003.txt", "moved.txt"),)
    assert count.reads == 2  # changed + new; the rename and the duplicate are not re-read
    assert retrievable(pipe, "X00002V0") == []  # deleted: gone
    assert retrievable(pipe, "X00001V0") == [] and retrievable(pipe, "X00001V1") != []
    assert retrievable(pipe, "X00003V0") == ["moved.txt"]
    assert retrievable(pipe, "X00004V0") == ["copy-of-4.txt", "dir4/file0004.txt"]
    assert pipe.store.stats()["documents"] == 20  # the duplicate is stored once
    assert pipe.store.fsck() == []
    (cid,) = pipe.store._conn().execute(
        "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH '\"X00004V0\"'").fetchone()
    hit = pipe.store.hits_for([(cid, 1.0)])[0]
    assert (hit.source, hit.also_in) == ("copy-of-4.txt", ("dir4/file0004.txt",))


def test_dry_run_on_new_index_creates_nothing(tmp_path):
    folder = tmp_path / "docs"
    make_folder(folder, 3)
    pipe = pipeline(tmp_path)
    st = pipe.sync(folder, dry_run=True)
    assert len(st.added) == 3
    assert not pipe.store.path.exists()


def test_failed_reparse_keeps_old_chunks_and_flags_file(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    from pdfmaker import make_pdf

    make_pdf(folder / "a.pdf", ["alpha code KEEPME"])
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    (folder / "a.pdf").write_bytes(b"%PDF-1.4\n garbage without any objects")
    st = pipe.sync(folder)
    assert [r.path for r in st.failed] == ["a.pdf"]
    assert retrievable(pipe, "KEEPME") == ["a.pdf"]
    assert pipe.store.stats()["stale"] == 1


def test_deletes_wait_for_a_complete_scan(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    make_folder(folder, 8)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    import importlib

    walk_mod = importlib.import_module("ragpipe.ingest.walk")

    real_scandir = os.scandir

    def failing_scandir(path):  # fault injection: one folder cannot be listed
        if Path(path).name == "dir1":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(walk_mod.os, "scandir", failing_scandir)
    (folder / "dir2/file0002.txt").unlink()
    st = pipe.sync(folder)
    assert st.deleted == ("dir2/file0002.txt",)  # the listed folder's deletion is applied
    assert "dir1/file0001.txt" in sources(pipe)  # the unlisted folder's files are kept
    assert any(r.outcome == Outcome.UNREADABLE and "dir1" in r.path for r in st.failed)


def test_chunking_change_rechunks(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    make_folder(folder, 5)
    count = Counting(monkeypatch)
    pipeline(tmp_path, embedder=count.embedder).sync(folder)
    count.reads = 0
    pipe = pipeline(tmp_path, embedder=count.embedder,
                    **{"chunking.size": 40, "chunking.overlap": 5})
    st = pipe.sync(folder)
    assert count.reads == 5 and len(st.changed) == 5
    desc, _ = dump(pipe.store)
    assert max(HashEmbedder().count_tokens(c[6]) for c in desc["chunks"]) <= 40
    assert pipe.store.fsck() == []


def test_embedder_change_reembeds_stored_text_without_parsing(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    make_folder(folder, 5)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    before, _ = dump(pipe.store)
    count = Counting(monkeypatch)
    other = HashEmbedder(dim=32)
    pipe2 = pipeline(tmp_path, embedder=other)
    reader = pipeline(tmp_path)  # an old reader still searches the old generation meanwhile
    assert reader.search("invoice", k=1)
    st = pipe2.sync(folder)
    assert count.reads == 0 and st.unchanged == 5
    after, vecs = dump(pipe2.store)
    assert after["chunks"] == before["chunks"]  # same chunk text, new vectors
    assert vecs.shape[1] == 32 and after["meta"]["dim"] == "32"
    assert after["meta"]["embedder"] == "hash-32"
    assert pipe2.store.fsck() == []
    assert pipe2.search("invoice travel", k=3)


def test_checkpoint_on_the_last_file_still_collects_replaced_content(tmp_path):
    # A checkpoint published at the last changed file left nothing else to publish: the
    # removal of the replaced contents was rolled back, so their chunks stayed in the index
    # (and every later sync reported them removed without publishing).
    folder = tmp_path / "docs"
    make_folder(folder, 12)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    for i in range(4):
        (folder / f"dir{i % 7}/file{i:04d}.txt").write_text(text_for(i, version=1))
    pipe.checkpoint_files = 4  # the 4th (last) changed file publishes a checkpoint
    st = pipe.sync(folder)
    assert len(st.changed) == 4 and st.chunks_removed > 0
    assert pipe.store.stats()["documents"] == 12  # the 4 old versions are gone
    assert_same_index(dump(pipe.store), clean_dump(tmp_path, folder))
    again = pipe.sync(folder)
    assert (again.chunks_added, again.chunks_removed, again.generation) == (0, 0, 0)


# ---------------------------------------------------------------- crash safety
def run_child(indexes: Path, folder: Path, env_extra: dict | None = None, kill_after=None):
    env = {**os.environ, **(env_extra or {})}
    cmd = [sys.executable, str(HERE / "sync_child.py"), str(indexes), "t", str(folder)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if kill_after is not None:
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def clean_dump(tmp_path: Path, folder: Path):
    p = pipeline(tmp_path / "clean")
    p.sync(folder)
    return dump(p.store)


def assert_same_index(got, want):
    (d1, v1), (d2, v2) = got, want
    assert d1 == d2
    assert np.allclose(v1, v2, atol=1e-6)


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash") / "docs"
    make_folder(root, 300)
    return root


@pytest.mark.parametrize("phase,point", [
    ("first", "content:150"),  # before the first checkpoint (200 files)
    ("first", "faiss_written:1"),  # checkpoint file written, not committed
    ("first", "committed:1"),  # checkpoint committed, then killed
    ("first", "content:250"),  # after a checkpoint
    ("update", "content:50"),  # an update of an existing index
    ("update", "faiss_written:1"),
    ("update", "committed:1"),
])
def test_crash_at_named_points_then_rerun_equals_clean_build(tmp_path, big_folder, phase, point):
    folder = tmp_path / "docs"
    shutil.copytree(big_folder, folder)
    indexes = tmp_path / "indexes"
    if phase == "update":  # a previous generation exists and the folder changed since
        rc, _, err = run_child(indexes, folder)
        assert rc == 0, err
        for i in range(0, 300, 3):
            (folder / f"dir{i % 7}/file{i:04d}.txt").write_text(text_for(i, version=1))
        for i in range(1, 300, 29):
            (folder / f"dir{i % 7}/file{i:04d}.txt").unlink()
    rc, _, err = run_child(indexes, folder, {"RAGPIPE_CRASH_AT": point})
    assert rc == -signal.SIGKILL, f"did not crash at {point}: {err}"
    if Store(indexes / "t").exists():
        assert Store(indexes / "t").fsck() == []  # whatever survived is a consistent index
    rc, _, err = run_child(indexes, folder)
    assert rc == 0, err
    pipe = pipeline(tmp_path)
    assert pipe.store.fsck() == []
    assert not list(pipe.store.path.glob(".*.tmp"))  # orphans of the crash were removed
    assert_same_index(dump(pipe.store), clean_dump(tmp_path, folder))


def test_sigkill_at_random_moments(tmp_path, big_folder):
    rng = random.Random(7)
    folder = tmp_path / "docs"
    shutil.copytree(big_folder, folder)
    indexes = tmp_path / "indexes"
    t0 = time.monotonic()
    rc, _, err = run_child(tmp_path / "timing", folder)
    assert rc == 0, err
    duration = time.monotonic() - t0
    for trial in range(5):
        # change some files between trials so each run has work to do
        for i in rng.sample(range(300), 30):
            p = folder / f"dir{i % 7}/file{i:04d}.txt"
            if p.exists():
                p.write_text(text_for(i, version=trial + 1))
        rc, _, _ = run_child(indexes, folder, kill_after=rng.uniform(0.2, duration))
        rc, _, err = run_child(indexes, folder)  # resume
        assert rc == 0, err
        pipe = pipeline(tmp_path)
        assert pipe.store.fsck() == [], f"trial {trial}"
        assert_same_index(dump(pipe.store), clean_dump(tmp_path / f"c{trial}", folder))


# ---------------------------------------------------------------- concurrency
def test_second_writer_exits_with_holder(tmp_path):
    folder = tmp_path / "docs"
    make_folder(folder, 3)
    pipe = pipeline(tmp_path)
    with pipe.store.writer({"embedder": "x"}, command="sync"):
        rc, _, err = run_child(tmp_path / "indexes", folder)
    assert rc == 2
    assert "being written by pid" in err and str(os.getpid()) in err
    with pipe.store.writer({}, command="sync"):
        with pytest.raises(IndexLocked):
            pipeline(tmp_path).sync(folder)


def test_two_syncs_at_once(tmp_path, big_folder):
    folder = tmp_path / "docs"
    shutil.copytree(big_folder, folder)
    indexes = tmp_path / "indexes"
    cmd = [sys.executable, str(HERE / "sync_child.py"), str(indexes), "t", str(folder)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert any("being written by" in err for _, err in results)
    assert_same_index(dump(pipeline(tmp_path).store), clean_dump(tmp_path, folder))


def test_queries_during_publishing(tmp_path):
    folder = tmp_path / "docs"
    make_folder(folder, 40)
    writer_pipe = pipeline(tmp_path)
    writer_pipe.sync(folder)
    reader = pipeline(tmp_path)
    errors: list[BaseException] = []
    seen_gens: set[int] = set()
    stop = threading.Event()

    def query_loop():
        try:
            while not stop.is_set():
                hits = reader.search("invoice travel laptop", k=5)
                gen = reader.store._loaded[0] if reader.store._loaded else 0
                seen_gens.add(gen)
                for h in hits:
                    # every hit is a complete chunk of a file of a live generation
                    assert h.text.startswith("Document") or h.text
                    assert h.source.endswith(".txt")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=query_loop)
    t.start()
    try:
        for v in range(1, 6):
            for i in range(0, 40, 4):
                (folder / f"dir{i % 7}/file{i:04d}.txt").write_text(text_for(i, version=v))
            writer_pipe.sync(folder)
            time.sleep(0.05)
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert len(seen_gens) >= 2  # the reader picked up new generations without a restart


# ---------------------------------------------------------------- corruption
@pytest.mark.parametrize("damage", ["truncate", "zero", "bitflip", "delete"])
def test_damaged_faiss_file_is_detected_and_repaired(tmp_path, damage):
    folder = tmp_path / "docs"
    make_folder(folder, 10)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    gen = pipe.store.current_generation()
    f = pipe.store.path / gen.faiss_file
    data = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(data[: len(data) // 2])
    elif damage == "zero":
        f.write_bytes(b"")
    elif damage == "bitflip":
        b = bytearray(data)
        b[len(b) // 3] ^= 0x01
        f.write_bytes(bytes(b))
    else:
        f.unlink()
    problems = pipeline(tmp_path).store.fsck()
    assert problems and ("checksum" in problems[0] or "missing" in problems[0])
    fixed = pipeline(tmp_path)
    _, done = fixed.fsck(repair=True)
    assert any("rebuilt" in d for d in done)
    assert fixed.store.fsck() == []
    assert_same_index(dump(fixed.store), clean_dump(tmp_path, folder))


def test_cli_fsck_exit_codes(tmp_path):
    folder = tmp_path / "docs"
    make_folder(folder, 3)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    env = {**os.environ, "RAGPIPE_PATHS_INDEXES": str(tmp_path / "indexes")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "ragpipe", *a], env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    r = run("fsck", "--index", "t")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    f = pipe.store.path / pipe.store.current_generation().faiss_file
    f.write_bytes(b"garbage")
    r = run("fsck", "--index", "t")
    assert r.returncode == 1 and "checksum" in r.stdout
    r = run("status", "--index", "t")
    assert r.returncode == 0 and "chunks" in r.stdout
