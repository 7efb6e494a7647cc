"""Writing an index: the Writer's changes, made visible together by ``publish``.

A Writer holds one SQLite write transaction. ``publish`` writes the new FAISS file
(vectors.write_index), commits the ``generations`` row naming it together with all
changes so far, and opens the next transaction; a long sync publishes checkpoints
this way. ``crash_point`` marks where crash tests kill the process.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..datatypes import Chunk
from ..errors import IndexCorrupt
from . import keywords
from .schema import FORMAT_VERSION
from .vectors import build_index, write_index

if TYPE_CHECKING:
    from .store import Store


class Writer:
    """Changes to an index, made visible together by ``publish``."""

    def __init__(
        self, store: Store, conn: sqlite3.Connection, meta: dict[str, str], fmt: str
    ) -> None:
        """``fmt``: the index's format as found (schema.check_format, which refuses others)."""
        self.store = store
        self.conn = conn
        self._in_txn = False
        self._added: list[int] = []
        self._removed: list[int] = []
        self._changed = False
        self._windows_built = False  # built afresh by this writer (repair need not again)
        self.salvaged: list[str] = []  # what Store.writer(salvage=True) did before this writer
        self._begin()
        old = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        want = {**meta, "format_version": str(FORMAT_VERSION)}
        self.previous_meta = old
        for key, value in want.items():
            if old.get(key) != value:
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
                self._changed = True
        if old.get(keywords.WINDOWS_KEY) != keywords.WINDOWS or fmt != str(FORMAT_VERSION):
            # An index written before keyword windows (or with another recipe): index
            # them now, published with this writer's changes (readers use chunks_fts
            # until then). About 1 s per 10,000 chunks, so a large index says so.
            n = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            if n >= 20_000:
                print(f"ragpipe: adding keyword windows to index {store.path.name!r} "
                      f"({n:,} chunks, once) ...", file=sys.stderr, flush=True)
            keywords.rebuild_windows(conn)
            self._windows_built = True
            self._changed = True

    def set_meta(self, values: dict[str, str]) -> None:
        """Record index-wide facts (e.g. the vector dimension) in this transaction."""
        for key, value in values.items():
            if self.previous_meta.get(key) != value:
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
                self.previous_meta[key] = value
                self._changed = True

    def _begin(self) -> None:
        if not self._in_txn:
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_txn = True

    def rollback(self) -> None:
        """Discard unpublished changes."""
        if self._in_txn:
            self.conn.execute("ROLLBACK")
            self._in_txn = False
        self._added, self._removed, self._changed = [], [], False

    # --- contents and files
    def has_content(self, sha256: str, recipe: str, embedder: str) -> bool:
        """True when this content is stored with the same recipe and embedder."""
        row = self.conn.execute(
            "SELECT recipe, embedder FROM contents WHERE sha256 = ?", (sha256,)
        ).fetchone()
        return row is not None and row[0] == recipe and row[1] == embedder

    def content_facts(self, sha256: str) -> tuple[str, str, str, int, int]:
        """(outcome, message, kind, pages, chunks) recorded for a stored content."""
        row = self.conn.execute(
            "SELECT outcome, message, kind, pages, chunks FROM files "
            "WHERE sha256 = ? AND outcome IN ('ok', 'ok_partial') LIMIT 1",
            (sha256,),
        ).fetchone()
        if row:
            return row
        kind, pages = self.conn.execute(
            "SELECT kind, pages FROM contents WHERE sha256 = ?", (sha256,)
        ).fetchone()
        n = self.conn.execute("SELECT count(*) FROM chunks WHERE sha256 = ?", (sha256,)).fetchone()
        return ("ok", "", kind, pages, n[0])

    def put_content(
        self,
        sha256: str,
        kind: str,
        pages: int,
        recipe: str,
        embedder: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        notes: str = "",
    ) -> None:
        """Store (or replace) one content's chunks and vectors."""
        self._drop_content_chunks(sha256)
        self.conn.execute(
            "INSERT OR REPLACE INTO contents VALUES (?, ?, ?, ?, ?, ?)",
            (sha256, kind, pages, recipe, embedder, notes),
        )
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        for c, v in zip(chunks, vecs, strict=True):
            cur = self.conn.execute(
                "INSERT INTO chunks(sha256, ordinal, page, start, end, heading, text, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sha256, c.ordinal, c.page, c.start, c.end, c.heading, c.text, v.tobytes()),
            )
            assert cur.lastrowid is not None
            self._added.append(cur.lastrowid)
        keywords.add_windows(self.conn, keywords.content_chunks(self.conn, sha256))
        self._changed = True
        crash_point("content")

    def chunks_of(self, sha256: str) -> list[tuple[int, str]]:
        """(chunk id, text) of one content, in order."""
        return keywords.content_chunks(self.conn, sha256)

    def replace_vectors(self, sha256: str, embedder: str, ids: Sequence[int], vectors: np.ndarray):
        """Swap in new vectors for existing chunks (embedder change), keeping their text."""
        for cid, v in zip(ids, np.ascontiguousarray(vectors, dtype=np.float32), strict=True):
            self.conn.execute("UPDATE chunks SET vector = ? WHERE id = ?", (v.tobytes(), cid))
            self._removed.append(cid)
            self._added.append(cid)
        self.conn.execute("UPDATE contents SET embedder = ? WHERE sha256 = ?", (embedder, sha256))
        self._changed = True

    def _drop_content_chunks(self, sha256: str) -> None:
        rows = keywords.content_chunks(self.conn, sha256)
        if rows:
            keywords.remove_windows(self.conn, rows)
            self.conn.execute("DELETE FROM chunks WHERE sha256 = ?", (sha256,))
            self._removed.extend(cid for cid, _ in rows)

    def set_file(
        self,
        path: str,
        sha256: str | None,
        size: int,
        mtime_ns: int,
        outcome: str,
        message: str = "",
        kind: str = "",
        pages: int = 0,
        chunks: int = 0,
        stale: bool = False,
    ) -> None:
        """Record a path's current state (and its content, if it has one)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO files(path, sha256, size, mtime_ns, kind, outcome, message, "
            "pages, chunks, stale, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (path, sha256, size, mtime_ns, kind, outcome, message, pages, chunks, int(stale),
             time.time()),
        )
        self._changed = True

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        """Update only the cheap change-detection facts (content unchanged)."""
        self.conn.execute(
            "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path)
        )
        self._changed = True

    def rename_file(self, old: str, new: str, size: int, mtime_ns: int) -> None:
        """Move a path's record to a new path, keeping its content."""
        self.conn.execute(
            "UPDATE files SET path = ?, size = ?, mtime_ns = ?, updated = ? WHERE path = ?",
            (new, size, mtime_ns, time.time(), old),
        )
        self._changed = True

    def remove_file(self, path: str) -> None:
        """Forget a path; its content goes when no other path uses it (see ``collect``)."""
        self.conn.execute("DELETE FROM files WHERE path = ?", (path,))
        self._changed = True

    def repair(self, embed: Any) -> list[str]:
        """Fix what fsck finds, from stored text; ``embed(texts)`` re-creates bad vectors."""
        done = []
        dim = int(self.previous_meta.get("dim", 0) or 0)
        bad = self.conn.execute(
            "SELECT id, text FROM chunks WHERE length(vector) != ? ORDER BY id", (dim * 4,)
        ).fetchall()
        if bad:
            vecs = np.ascontiguousarray(embed([t for _, t in bad]), dtype=np.float32)
            for (cid, _), v in zip(bad, vecs, strict=True):
                self.conn.execute("UPDATE chunks SET vector = ? WHERE id = ?", (v.tobytes(), cid))
            done.append(f"re-embedded {len(bad)} chunks from their stored text")
        n = self.conn.execute(
            "UPDATE files SET sha256 = NULL, size = -1, stale = 0 WHERE sha256 IS NOT NULL AND "
            "sha256 NOT IN (SELECT sha256 FROM contents)"
        ).rowcount
        if n:
            done.append(f"{n} files without stored content will be re-read by the next sync")
        self.conn.execute("REINDEX")  # indexes that integrity_check found out of step
        self.conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
        if not self._windows_built:
            keywords.rebuild_windows(self.conn)
        self._changed = True
        gen = self.publish(note="repair", rebuild=True)
        done.append(f"rebuilt the vector index from SQLite as generation {gen}")
        return done

    def collect(self) -> int:
        """Delete contents (and their chunks) that no file points at; returns chunks removed."""
        before = len(self._removed)
        orphans = [
            r[0]
            for r in self.conn.execute(
                "SELECT sha256 FROM contents WHERE sha256 NOT IN "
                "(SELECT sha256 FROM files WHERE sha256 IS NOT NULL)"
            )
        ]
        for sha in orphans:
            self._drop_content_chunks(sha)
            self.conn.execute("DELETE FROM contents WHERE sha256 = ?", (sha,))
        if orphans:
            self._changed = True  # publish even when a checkpoint just published the rest
        return len(self._removed) - before

    @property
    def pending(self) -> bool:
        """True when there are unpublished changes."""
        return self._changed

    # --- publishing
    def build_faiss(self, base: Any = None) -> Any:
        """The FAISS index of the state inside this transaction (see vectors.build_index).

        With ``base`` (the previous generation's index), only removed and added
        vectors are applied; otherwise everything is rebuilt from SQLite.
        """
        return build_index(self.conn, self.store.ann_threshold, base, self._removed, self._added)

    def publish(self, note: str = "", rebuild: bool = False) -> int:
        """Make every change so far visible as one new generation; returns its id.

        ``rebuild`` writes a FAISS file built from SQLite alone, even with no changes.
        """
        if not self._changed and not rebuild:
            return 0
        prev = self.store.current_generation(self.conn)
        base = None
        if prev is not None and not rebuild:
            try:
                base = self.store.load_faiss(prev)
            except IndexCorrupt:
                base = None  # rebuild from SQLite
            if base is not None and base.d != int(self.previous_meta.get("dim", base.d)):
                base = None  # new embedder dimension: rebuild
        index = self.build_faiss(base)
        expected = int(self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        if index.ntotal != expected:  # incremental update went wrong: rebuild exactly
            index = self.build_faiss(None)
        gen_id = (prev.id if prev else 0) + 1
        name = f"vectors-{gen_id:06d}.faiss"
        digest = write_index(index, self.store.path, name)
        crash_point("faiss_written")
        self.conn.execute(
            "INSERT INTO generations(id, faiss_file, faiss_sha256, vectors, created, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (gen_id, name, digest, index.ntotal, time.time(), note),
        )
        self.conn.execute("COMMIT")
        self._in_txn = False
        crash_point("committed")
        self._added, self._removed, self._changed = [], [], False
        self._cleanup(keep={name, prev.faiss_file if prev else ""})
        self._begin()
        return gen_id

    def _cleanup(self, keep: set[str]) -> None:
        """Remove FAISS files of older generations and orphans of crashed runs."""
        for f in self.store.path.glob("*.faiss*"):
            if f.name not in keep:
                try:
                    f.unlink()
                except OSError:
                    pass
        self.conn.execute("DELETE FROM generations WHERE faiss_file NOT IN (?, ?)", tuple(keep))


_crash_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here when RAGPIPE_CRASH_AT is ``name`` or ``name:N`` (the Nth time); for crash tests.

    Points: ``content`` (after storing one file's chunks), ``faiss_written`` (new FAISS
    file renamed into place, not yet committed), ``committed`` (generation committed,
    old files not yet cleaned up).
    """
    want = os.environ.get("RAGPIPE_CRASH_AT")
    if not want:
        return
    point, _, nth = want.partition(":")
    if point != name:
        return
    _crash_hits[name] = _crash_hits.get(name, 0) + 1
    if _crash_hits[name] >= int(nth or 1):
        os.kill(os.getpid(), 9)
