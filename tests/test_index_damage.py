"""A damaged index on disk: diagnosed in one line, salvaged by fsck --repair, never lost.

Also fsck beside a running sync (one snapshot, no false "locked" problems) and the
owner-only permissions of index files. Real SQLite and FAISS files, damaged the way
a disk does it: bytes overwritten, a file cut short, a header destroyed.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import HashEmbedder

from ragpipe.errors import IndexDamaged, IndexLocked
from ragpipe.pipeline import Pipeline
from ragpipe.settings import load_settings
from ragpipe.store import Store, dump

HERE = Path(__file__).resolve().parent
WORDS = ("invoice travel laptop policy budget contract holiday printer office badge "
         "server backup meeting salary pension parking canteen training audit vendor").split()
PAGE = 4096  # SQLite's default page size


def text_for(i: int, version: int = 0) -> str:
    rng = random.Random(i * 1000 + version)
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 400)))
    return f"Document {i} version {version} code X{i:05d}V{version}.\n\n{body}\n"


def make_folder(root: Path, n: int, version: int = 0) -> Path:
    for i in range(n):
        sub = root / f"dir{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i:04d}.txt").write_text(text_for(i, version))
    return root


def pipeline(tmp_path: Path, index: str = "t", embedder=None) -> Pipeline:
    settings = load_settings(overrides={"paths.indexes": tmp_path / "indexes"}, environ={})
    return Pipeline(settings, index, embedder=embedder or HashEmbedder())


def built(tmp_path: Path, n: int = 60, embedder=None) -> tuple[Pipeline, Path]:
    folder = make_folder(tmp_path / "docs", n)
    pipe = pipeline(tmp_path, embedder=embedder)
    pipe.sync(folder)
    pipe.store.close()
    return pipe, folder


# ----- damage, as a disk does it ---------------------------------------------------------------
def overwrite_middle(db: Path) -> None:
    """8 KiB of random bytes over two pages in the middle of the file."""
    data = bytearray(db.read_bytes())
    at = len(data) // 2 // PAGE * PAGE
    data[at : at + 2 * PAGE] = random.Random(1).randbytes(2 * PAGE)
    db.write_bytes(bytes(data))
    conn = sqlite3.connect(db)
    try:  # pages that held nothing (free pages) would damage nothing: not this test's case
        assert conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]
    except sqlite3.DatabaseError:
        pass  # "malformed": damaged
    finally:
        conn.close()


def truncate_half(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2 // PAGE * PAGE])


def destroy_header(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[:PAGE] = random.Random(2).randbytes(PAGE)
    db.write_bytes(bytes(data))


def clobber_table(db: Path, table: str) -> None:
    """Random bytes over a table's root page: every read of the table fails."""
    conn = sqlite3.connect(db)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    conn.close()
    data = bytearray(db.read_bytes())
    at = (root[0] - 1) * PAGE
    data[at : at + PAGE] = random.Random(3).randbytes(PAGE)
    db.write_bytes(bytes(data))


DAMAGE = {"overwrite": overwrite_middle, "truncate": truncate_half}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kept_aside(db: Path) -> Path:
    """The one damaged database that a repair renamed aside."""
    kept = list(db.parent.glob(f"{db.name}.damaged-*"))
    assert len(kept) == 1, kept  # no WAL beside it: it had none
    return kept[0]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAGPIPE_PATHS_INDEXES": str(tmp_path / "indexes"),
           "RAGPIPE_PATHS_MODELS": str(HERE.parent / "models")}
    return subprocess.run([sys.executable, "-m", "ragpipe", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def one_line_error(r: subprocess.CompletedProcess, index: str = "t") -> str:
    """The single error line of a command that met a damaged index (exit 2, no traceback)."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"index {index!r} is damaged" in lines[0]
    assert f"ragpipe fsck --index {index}" in lines[0]
    return lines[0]


# ----- every command: one clear line ------------------------------------------------------------
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_database_one_line_from_status_sync_and_fsck(tmp_path, damage):
    pipe, folder = built(tmp_path)
    db = pipe.store.db_path
    DAMAGE[damage](db)
    before = sha(db)
    one_line_error(cli(tmp_path, "status", "--index", "t"))
    one_line_error(cli(tmp_path, "sync", str(folder), "--index", "t"))
    assert sha(db) == before  # a damaged database is not written to
    with pytest.raises(IndexDamaged):
        pipeline(tmp_path).sync(folder)
    r = cli(tmp_path, "fsck", "--index", "t")
    assert r.returncode == 1 and "Traceback" not in r.stderr, (r.stdout, r.stderr)
    first = r.stdout.splitlines()[0]
    assert first.startswith("problem: index 't' is damaged: ")
    assert "ragpipe fsck --repair --index t" in first
    assert sha(db) == before


def test_search_and_report_name_the_damage(tmp_path, embedder):
    pipe, _ = built(tmp_path, 12, embedder=embedder)
    clobber_table(pipe.store.db_path, "chunks")
    one_line_error(cli(tmp_path, "search", "travel budget", "--index", "t"))
    clobber_table(pipe.store.db_path, "files")
    one_line_error(cli(tmp_path, "report", "--index", "t"))


def test_web_page_names_the_damage(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    pipe, _ = built(tmp_path, 12)
    clobber_table(pipe.store.db_path, "files")
    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.chdir(HERE.parent)
    at = AppTest.from_file(str(HERE.parent / "ui" / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert any("index 't' is damaged" in e.value for e in at.error), [e.value for e in at.error]


def test_status_notices_a_missing_or_corrupt_faiss_file(tmp_path):
    pipe, _ = built(tmp_path, 10)
    f = pipe.store.path / pipe.store.current_generation().faiss_file
    r = cli(tmp_path, "status", "--index", "t")
    assert r.returncode == 0 and "check      ok" in r.stdout, r.stderr
    f.write_bytes(b"garbage")
    r = cli(tmp_path, "status", "--index", "t")
    assert r.returncode == 0 and "fails its checksum" in r.stdout, r.stderr
    f.unlink()
    r = cli(tmp_path, "status", "--index", "t")
    assert r.returncode == 0 and "is missing" in r.stdout, r.stderr


# ----- fsck --repair: salvage what can be read, read the rest again -----------------------------
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_repair_salvages_keeps_the_damaged_file_and_rereads_what_was_lost(tmp_path, damage):
    pipe, folder = built(tmp_path)
    want = dump(pipe.store)
    db = pipe.store.db_path
    DAMAGE[damage](db)
    damaged_bytes = sha(db)
    fixer = pipeline(tmp_path)
    problems, done = fixer.fsck(repair=True)
    assert "is damaged" in problems[0]
    aside = kept_aside(db)
    assert sha(aside) == damaged_bytes  # the original, byte for byte
    assert any("kept the damaged database as" in d for d in done), done
    assert any(d.startswith("copied what could be read") for d in done), done
    assert any(d.startswith(f"synced {folder}") for d in done), done
    assert fixer.store.fsck() == []
    got = dump(fixer.store)
    assert got[0] == want[0]  # every file, chunk and setting is back
    assert got[1].shape == want[1].shape


def test_repair_of_a_lost_row_range_reports_it_and_only_rereads_those_files(tmp_path):
    pipe, folder = built(tmp_path)
    want = dump(pipe.store)
    clobber_table(pipe.store.db_path, "chunks")  # the root: no chunk can be read
    fixer = pipeline(tmp_path)
    _, done = fixer.fsck(repair=True)
    assert any("damaged stretch" in d and "chunks rowids" in d for d in done), done
    assert any("documents lost chunks or their record" in d for d in done), done
    assert fixer.store.fsck() == []
    assert dump(fixer.store)[0] == want[0]


def test_repair_of_an_unreadable_file_says_to_rebuild_and_keeps_it(tmp_path):
    pipe, folder = built(tmp_path, 10)
    db = pipe.store.db_path
    destroy_header(db)
    damaged_bytes = sha(db)
    r = cli(tmp_path, "fsck", "--index", "t")
    assert r.returncode == 1 and "is damaged" in r.stdout and "Traceback" not in r.stderr
    r = cli(tmp_path, "fsck", "--repair", "--index", "t")
    assert r.returncode == 2 and "Traceback" not in r.stderr, (r.stdout, r.stderr)
    assert "cannot be salvaged" in r.stderr and "ragpipe ingest FOLDER --index t" in r.stderr
    assert sha(kept_aside(db)) == damaged_bytes
    pipeline(tmp_path).sync(folder)  # the rebuild the message asks for
    assert pipeline(tmp_path).store.fsck() == []


def test_repair_cli_on_overwritten_database(tmp_path):
    pipe, folder = built(tmp_path)
    overwrite_middle(pipe.store.db_path)
    r = cli(tmp_path, "fsck", "--repair", "--index", "t")
    # the configured embedder (MiniLM) is not the index's: fsck does not sync, it says to
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "repaired: kept the damaged database as" in r.stdout
    assert "ragpipe sync FOLDER --index t" in r.stdout
    assert "still wrong" not in r.stdout


# ----- fsck beside a writer ---------------------------------------------------------------------
def test_fsck_beside_an_open_writer_reads_the_published_snapshot(tmp_path):
    pipe, folder = built(tmp_path, 20)
    writer_pipe = pipeline(tmp_path)
    with writer_pipe.store.writer({}, command="sync") as w:
        w.remove_file("dir0/file0000.txt")
        w.collect()  # unpublished: chunks gone in the writer's transaction only
        with pytest.raises(IndexLocked):  # a second writer is refused ...
            with Store(pipe.store.path).writer({}, command="sync"):
                pass
        notes: list[str] = []
        t0 = time.monotonic()
        assert Store(pipe.store.path).fsck(notes) == []
        assert time.monotonic() - t0 < 8  # no wait for SQLite's lock (busy_timeout is 10 s)
        # ... and leaves the lock file naming the holder
        assert any(f"is being written by pid {os.getpid()} (sync" in n for n in notes), notes
        r = cli(tmp_path, "fsck", "--index", "t")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "note: index 't' is being written by pid" in r.stdout
        assert "index 't': ok" in r.stdout


def test_fsck_during_a_real_sync_finds_no_false_problems(tmp_path):
    pipe, folder = built(tmp_path, 300)
    make_folder(folder, 300, version=1)  # every file changed: the sync has work to do
    indexes = tmp_path / "indexes"
    cmd = [sys.executable, str(HERE / "sync_child.py"), str(indexes), "t", str(folder)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = Store(indexes / "t")
    lock = indexes / "t" / "write.lock"
    deadline = time.monotonic() + 120
    while f"pid {child.pid} " not in lock.read_text() and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    runs, notes = 0, []
    while child.poll() is None:
        assert store.fsck(notes) == []
        runs += 1
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert runs >= 1 and any("being written" in n for n in notes)
    assert store.fsck() == []


# ----- owner-only files -------------------------------------------------------------------------
def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_index_files_are_readable_by_their_owner_only(tmp_path, umask_022):
    folder = make_folder(tmp_path / "docs", 5)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    idx = pipe.store.path
    assert mode(tmp_path / "indexes") == 0o700  # created by ragpipe
    assert mode(idx) == 0o700
    files = [p for p in idx.iterdir()]
    assert {p.name for p in files} >= {"index.sqlite", "write.lock"}
    assert any(p.suffix == ".faiss" for p in files)
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    with pipe.store.writer({}) as w:
        w.remove_file("dir0/file0000.txt")
        w.publish()
        wal = [p for p in idx.iterdir() if p.name.endswith(("-wal", "-shm"))]
        assert wal and all(mode(p) == 0o600 for p in wal)


def test_an_existing_index_is_tightened_by_its_next_write(tmp_path, umask_022):
    folder = make_folder(tmp_path / "docs", 5)
    pipe = pipeline(tmp_path)
    pipe.sync(folder)
    idx = pipe.store.path
    os.chmod(idx, 0o755)
    for p in idx.iterdir():
        os.chmod(p, 0o644)
    pipeline(tmp_path).sync(folder)  # nothing changed, but the writer opened the index
    assert mode(idx) == 0o700
    assert all(mode(p) == 0o600 for p in idx.iterdir())
