"""Checking an index: ``fsck`` (consistency of SQLite and FAISS) and ``dump`` (comparison)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import IndexCorrupt
from . import keywords
from .vectors import index_ids

if TYPE_CHECKING:
    from .store import Store


def fsck(store: Store) -> list[str]:
    """Cross-check SQLite against the live FAISS file; returns the problems found."""
    problems: list[str] = []
    conn = store._conn()
    for (msg,) in conn.execute("PRAGMA integrity_check"):
        if msg != "ok":
            problems.append(f"sqlite: {msg}")
    try:
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
    except sqlite3.DatabaseError as exc:
        problems.append(f"keyword index: {exc}")
    with store.snapshot() as snap:
        problems += keywords.check_windows(snap)
    meta = store.meta()
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
    gen = store.current_generation()
    chunk_ids = {r[0] for r in conn.execute("SELECT id FROM chunks")}
    if gen is None:
        if chunk_ids:
            problems.append("chunks are stored but no generation was published")
        return problems
    try:
        index = store.load_faiss(gen)
    except IndexCorrupt as exc:
        problems.append(str(exc))
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
