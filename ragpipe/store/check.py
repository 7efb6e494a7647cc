"""Checking an index: ``fsck`` (consistency of SQLite and FAISS) and ``dump`` (comparison)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import IndexCorrupt, IndexDamaged, IndexLocked
from . import keywords, lock
from .schema import connect, damaged, is_damage
from .vectors import check_file, index_ids

if TYPE_CHECKING:
    from .store import Generation, Store


def sqlite_check(conn: sqlite3.Connection, quick: bool = True) -> list[str]:
    """What SQLite's own check finds wrong with the database, one line each (empty: ok).

    ``quick``: PRAGMA quick_check, which reads every page but skips comparing indexes
    with their tables; otherwise the full integrity_check.
    """
    pragma = "quick_check" if quick else "integrity_check"
    try:
        rows = conn.execute(f"PRAGMA {pragma}(10)").fetchall()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return [str(exc)]
    lines = [line.strip() for (msg,) in rows for line in msg.splitlines()]
    return [line for line in lines if line and line != "ok" and not line.startswith("***")]


def damage(db: Path) -> list[str]:
    """What SQLite's quick check finds wrong with the database file ``db`` (empty: nothing)."""
    try:
        conn = connect(db, readonly=True)
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    try:
        return sqlite_check(conn, quick=True)
    finally:
        conn.close()


def health(store: Store) -> list[str]:
    """The quick check of `ragpipe status`: the live FAISS file's problems (if any).

    Raises IndexDamaged when SQLite's quick check fails; a FAISS file that is missing
    or fails its checksum is a problem returned.
    """
    store.require()
    found = damage(store.db_path)
    if found:
        raise damaged(store.path.name, found)
    gen = store.current_generation()
    problem = gen and check_file(store.path / gen.faiss_file, gen.faiss_sha256)
    return [problem] if problem else []


def fsck(store: Store, notes: list[str] | None = None) -> list[str]:
    """Cross-check SQLite against the live FAISS file; returns the problems found.

    Everything is read in one snapshot, the last published generation, whatever a
    sync writes meanwhile. Then FTS5's own checks of the keyword indexes, which
    write: they take the write lock, and while another process holds it they are
    skipped and ``notes`` says so. A damaged database is one problem, not an exception.
    """
    store.require()
    try:
        with store.snapshot() as conn:
            # The FAISS file first: a sync publishing twice meanwhile would remove it.
            gen = store.current_generation(conn)
            index, problems = None, []
            try:
                index = store.load_faiss(gen) if gen else None
            except IndexCorrupt as exc:
                problems.append(str(exc))
            damage = sqlite_check(conn, quick=False)
            if damage:
                first = damaged(store.path.name, damage[:1], repair=True)
                return [str(first)] + [f"sqlite: {d}" for d in damage[1:]]
            problems += _consistency(conn, gen, index)
    except IndexDamaged as exc:
        return [str(damaged(store.path.name, [str(exc.__cause__ or exc)], repair=True))]
    return problems + _self_checks(store, notes)


def _consistency(conn: sqlite3.Connection, gen: Generation | None, index: Any) -> list[str]:
    """Fsck's checks inside its snapshot: keyword windows, vectors, files, FAISS ids.

    ``gen`` is the snapshot's generation and ``index`` its FAISS index (None: unreadable).
    """
    problems = keywords.check_windows(conn)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    dim = int(meta.get("dim", 0) or 0)
    bad = conn.execute(
        "SELECT count(*) FROM chunks WHERE length(vector) != ?", (dim * 4,)
    ).fetchone()[0]
    if bad:
        problems.append(f"{bad} chunk vectors have the wrong size (expected {dim} floats)")
    dangling = conn.execute(
        "SELECT count(*) FROM files WHERE sha256 IS NOT NULL AND sha256 NOT IN "
        "(SELECT sha256 FROM contents)"
    ).fetchone()[0]
    if dangling:
        problems.append(f"{dangling} files point at content that is not stored")
    empty = conn.execute(
        "SELECT count(*) FROM contents WHERE sha256 NOT IN (SELECT sha256 FROM chunks)"
    ).fetchone()[0]
    if empty:
        problems.append(f"{empty} stored documents have no chunks")
    chunk_ids = {r[0] for r in conn.execute("SELECT id FROM chunks")}
    if gen is None:
        if chunk_ids:
            problems.append("chunks are stored but no generation was published")
        return problems
    if index is None:
        return problems
    faiss_ids = index_ids(index)
    orphans, missing = faiss_ids - chunk_ids, chunk_ids - faiss_ids
    if orphans:
        problems.append(f"{len(orphans)} vectors in {gen.faiss_file} have no chunk")
    if missing:
        problems.append(f"{len(missing)} chunks have no vector in {gen.faiss_file}")
    if index.d != dim:
        problems.append(f"{gen.faiss_file} has dimension {index.d}, the index says {dim}")
    return problems


def _self_checks(store: Store, notes: list[str] | None) -> list[str]:
    """FTS5's integrity-check of each keyword table, under the write lock if it is free.

    The check is an INSERT: it needs SQLite's write lock, which a sync holds for its
    whole run, so it would wait and fail with "database is locked".
    """
    try:
        with store.write_lock("fsck"):
            conn = store._conn()
            problems = []
            tables = [("chunks_fts", "keyword index")]
            windows = "SELECT 1 FROM sqlite_master WHERE name = 'chunk_windows_fts'"
            if keywords.windows_current(conn) and conn.execute(windows).fetchone():
                tables.append(("chunk_windows_fts", "keyword windows"))
            for table, label in tables:
                try:
                    conn.execute(f"INSERT INTO {table}({table}) VALUES ('integrity-check')")
                except sqlite3.DatabaseError as exc:
                    problems.append(f"{label}: {exc}")
            return problems
    except IndexLocked:
        if notes is not None:
            notes.append(
                f"index {store.path.name!r} is being written by "
                f"{lock.holder(store.path) or 'another process'}: checked its last published "
                "generation; the keyword indexes' self-checks were skipped (run fsck again "
                "when it has finished)"
            )
        return []


def dump(store: Store) -> tuple[dict[str, Any], np.ndarray]:
    """A canonical, id-free description of an index's content, and its vectors in that order.

    Two indexes hold the same content when the descriptions are equal and the vectors are
    close (embedding the same text twice may differ in the last float bits).
    """
    conn = store._conn()
    files = conn.execute(
        "SELECT path, sha256, outcome, chunks, stale FROM files ORDER BY path"
    ).fetchall()
    rows = conn.execute(
        "SELECT sha256, ordinal, page, start, end, heading, text, vector FROM chunks "
        "ORDER BY sha256, ordinal"
    ).fetchall()
    meta = {k: v for k, v in store.meta().items() if k != "root"}
    desc = {
        "files": [list(r) for r in files],
        "chunks": [list(r[:7]) for r in rows],
        "meta": meta,
    }
    dim = int(meta.get("dim", 0) or 0)
    vectors = (
        np.stack([np.frombuffer(r[7], dtype=np.float32) for r in rows])
        if rows
        else np.zeros((0, dim), dtype=np.float32)
    )
    return desc, vectors
