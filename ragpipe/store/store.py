"""The Store: one index folder, read in snapshots, written through a Writer."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..datatypes import Chunk, FileReport, Hit, Outcome
from ..errors import IndexCorrupt, IndexMismatch, IndexNotFound
from . import check, keywords, lock, private, vectors
from .salvage import salvage as salvage_database
from .schema import DB_NAME, SCHEMA, check_format, connect, damaged, guard, guarded
from .vectors import ANN_THRESHOLD
from .writer import Writer


@dataclass(frozen=True)
class FileRow:
    """What the index knows about one path."""

    path: str
    sha256: str | None
    size: int
    mtime_ns: int
    outcome: str
    stale: bool


@dataclass(frozen=True)
class Generation:
    """One published state of the index."""

    id: int
    faiss_file: str
    faiss_sha256: str
    vectors: int
    created: float


class Store:
    """An index folder. Cheap to construct; opens files on first use."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db_path = self.path / DB_NAME
        self._local = threading.local()
        self._faiss_lock = threading.Lock()
        self._loaded: tuple[int, Any] | None = None  # (generation id, faiss index)
        self.warnings: list[str] = []
        # Approximate search (see vectors.build_index): the size from which publish writes an IVF
        # index, and the lists it scans per query (0: the value stored in the index).
        self.ann_threshold = ANN_THRESHOLD
        self.nprobe = 0

    # ----- opening -------------------------------------------------------------------------
    def exists(self) -> bool:
        """True when the index has been created."""
        return self.db_path.is_file()

    def require(self) -> None:
        """Raise IndexNotFound unless the index has been created."""
        if not self.exists():
            raise IndexNotFound(
                f"index {self.path.name!r} does not exist at {self.path}: build it with "
                f"`ragpipe ingest FOLDER --index {self.path.name}`"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.require()
            conn = connect(self.db_path)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @guarded
    def meta(self) -> dict[str, str]:
        """The index's description: format, embedder, dimension, chunking, root, local_only.

        Empty while another writer is still creating the index (its file exists before its
        tables do): two first syncs may start together, and one of them waits for the lock.
        """
        try:
            return dict(self._conn().execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise

    def check_embedder(self, name: str) -> None:
        """Refuse to search with an embedder other than the one the index was built with."""
        built = self.meta().get("embedder")
        if built and built != name:
            raise IndexMismatch(
                f"index {self.path.name!r} was built with embedder {built}, but {name} is "
                f"configured: set embedder.model back, or re-embed with "
                f"`ragpipe sync FOLDER --index {self.path.name}`"
            )

    # ----- generations ---------------------------------------------------------------------
    @guarded
    def generations(self) -> list[Generation]:
        """All generation rows, newest first."""
        rows = self._conn().execute(
            "SELECT id, faiss_file, faiss_sha256, vectors, created FROM generations "
            "ORDER BY id DESC"
        )
        return [Generation(*r) for r in rows]

    @guarded
    def current_generation(self, conn: sqlite3.Connection | None = None) -> Generation | None:
        """The newest published generation, if any (as seen by ``conn``)."""
        row = (
            (conn or self._conn())
            .execute(
                "SELECT id, faiss_file, faiss_sha256, vectors, created FROM generations "
                "ORDER BY id DESC LIMIT 1"
            )
            .fetchone()
        )
        return Generation(*row) if row else None

    def load_faiss(self, gen: Generation) -> Any:
        """Read and verify one generation's FAISS file; raise IndexCorrupt if it fails."""
        return vectors.read_index(self.path / gen.faiss_file, gen.faiss_sha256, gen.vectors)

    def _live_index(self, gen: Generation | None) -> Any:
        """The FAISS index for ``gen``; falls back to an older good generation if it is corrupt."""
        if gen is None:
            return None
        with self._faiss_lock:
            if self._loaded and self._loaded[0] == gen.id:
                return self._loaded[1]
            try:
                index = self.load_faiss(gen)
            except IndexCorrupt as exc:
                index = None
                for older in self.generations():
                    if older.id >= gen.id:
                        continue
                    try:
                        index = self.load_faiss(older)
                    except IndexCorrupt:
                        continue
                    self.warnings.append(f"{exc}; serving older generation {older.id}")
                    break
                if index is None:
                    raise
            self._loaded = (gen.id, index)
            return index

    # ----- reading -------------------------------------------------------------------------
    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: everything read inside sees one generation."""
        with guard(self.path.name):
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @guarded
    def count_chunks(self) -> int:
        """Chunks in the index."""
        return int(self._conn().execute("SELECT count(*) FROM chunks").fetchone()[0])

    def search(
        self, query: np.ndarray, k: int, allowed_ids: Sequence[int] | None = None
    ) -> list[Hit]:
        """Dense search: the ``k`` chunks whose vectors are nearest to ``query``.

        ``allowed_ids`` restricts the search to those chunk ids inside FAISS
        (a selector), so a filtered search still returns k hits when k exist.
        """
        with self.snapshot() as conn:
            return self._hits(conn, self.dense_pairs(conn, query, k, allowed_ids))

    def dense_pairs(
        self,
        conn: sqlite3.Connection,
        query: np.ndarray,
        k: int,
        allowed_ids: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the ``k`` nearest vectors, best first, as seen by ``conn``.

        Exact on a flat index; on an IVF index ``nprobe`` lists (see vectors.search_index).
        """
        index = self._live_index(self.current_generation(conn))
        return vectors.search_index(index, query, k, allowed_ids, self.nprobe)

    def keyword_search(
        self,
        conn: sqlite3.Connection,
        match: str,
        k: int,
        where: tuple[str, list] | None = None,
        also: Sequence[int] = (),
    ) -> dict[int, float]:
        """Keyword scores (BM25, higher is better) of a search's candidates.

        The candidates are the ``k`` chunks whose own text ranks best (with ``where``),
        the chunks next to them (their windows hold the same words) and ``also`` (the
        dense candidates); each gets its window's BM25, or nothing when no term
        matches. An index not yet windowed is scored by the chunks' own text.
        """
        found = keywords.keyword_candidates(conn, match, k, where)
        if not found:
            return {}
        ids = [c for c, _ in found]
        if not keywords.windows_current(conn):
            own = dict(found)
            own.update(keywords.keyword_scores(conn, match, [c for c in also if c not in own],
                                               windows=False))
            return own
        near = self.neighbour_ids(conn, ids, keywords.RADIUS)
        ids += [o for c in ids for _, o in near[c]]
        return keywords.keyword_scores(conn, match, list(dict.fromkeys([*ids, *also])))

    def common_terms(
        self, conn: sqlite3.Connection, terms: Sequence[str], max_share: float
    ) -> set[str]:
        """The ``terms`` found in more than ``max_share`` of the chunks (keywords.common_terms)."""
        gen = self.current_generation(conn)
        return keywords.common_terms(conn, terms, max_share, gen.vectors if gen else 0)

    def term_counts(self, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """Chunks holding each term (keywords.term_chunk_counts), and all chunks."""
        with self.snapshot() as conn:
            gen = self.current_generation(conn)  # its vectors: one per chunk, as common_terms
            return keywords.term_chunk_counts(conn, list(terms)), gen.vectors if gen else 0

    def vectors_for(self, conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors of the given chunk ids (those that exist)."""
        return vectors.vectors_by_id(conn, ids)

    def neighbour_ids(
        self, conn: sqlite3.Connection, ids: Sequence[int], n: int
    ) -> dict[int, list[tuple[int, int]]]:
        """The chunks up to ``n`` places before and after each chunk, in its document.

        Returns chunk id -> [(offset, id)] in document order (offset -n..n, 0 excluded).
        """
        out: dict[int, list[tuple[int, int]]] = {i: [] for i in ids}
        if not ids or n <= 0:
            return out
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            "SELECT h.id, o.ordinal - h.ordinal, o.id FROM chunks h JOIN chunks o "
            "ON o.sha256 = h.sha256 AND o.ordinal BETWEEN h.ordinal - ? AND h.ordinal + ? "
            f"AND o.id != h.id WHERE h.id IN ({marks}) ORDER BY h.id, o.ordinal",
            [n, n, *ids],
        ).fetchall()
        for hid, off, oid in rows:
            out[hid].append((int(off), int(oid)))
        return out

    def hits_in(
        self, conn: sqlite3.Connection, pairs: Sequence[tuple[int, float]],
        where: tuple[str, list] | None = None,
    ) -> list[Hit]:
        """Hits for (chunk id, score) pairs inside an open snapshot; unknown ids are skipped.

        ``where`` (a condition on ``files f``: Filter.sql) limits the files a hit names
        (its ``source`` and ``also_in``) to those matching it, so the same text in a
        folder the asker may not read is not named; a hit none of whose files match is
        skipped.
        """
        return self._hits(conn, pairs, where)

    def hits_for(self, pairs: Sequence[tuple[int, float]]) -> list[Hit]:
        """Hits for (chunk id, score) pairs, in the given order; unknown ids are skipped."""
        with self.snapshot() as conn:
            return self._hits(conn, pairs)

    def _hits(self, conn: sqlite3.Connection, pairs: Sequence[tuple[int, float]],
              where: tuple[str, list] | None = None) -> list[Hit]:
        if not pairs:
            return []
        ids = [i for i, _ in pairs]
        marks = ",".join("?" * len(ids))
        cond, args = where or ("1", [])
        rows = conn.execute(
            f"SELECT c.id, c.text, c.page, c.start, c.end, c.heading, "
            f"(SELECT group_concat(path, char(0)) FROM (SELECT path FROM files f "
            f" WHERE f.sha256 = c.sha256 AND ({cond}) ORDER BY path)) "
            f"FROM chunks c WHERE c.id IN ({marks})",
            [*args, *ids],
        ).fetchall()
        by_id = {r[0]: r for r in rows}
        hits = []
        for cid, score in pairs:
            r = by_id.get(cid)
            if r is None or not r[6]:
                continue  # deleted by a newer generation, or no file points at it
            paths = r[6].split("\0")
            hits.append(Hit(cid, r[1], paths[0], r[2], r[3], r[4], score, r[5], tuple(paths[1:])))
        return hits

    @guarded
    def chunk_ids_where(
        self, where: tuple[str, list], conn: sqlite3.Connection | None = None
    ) -> list[int]:
        """Ids of chunks of files matching ``where`` (a condition on ``files f``: Filter.sql)."""
        sql = (
            "SELECT DISTINCT c.id FROM chunks c JOIN files f ON f.sha256 = c.sha256 "
            f"WHERE {where[0]}"
        )
        return [r[0] for r in (conn or self._conn()).execute(sql, where[1])]

    @guarded
    def files(self) -> list[FileReport]:
        """The recorded outcome of every file, by path."""
        rows = self._conn().execute(
            "SELECT path, outcome, message, pages, chunks, kind FROM files ORDER BY path"
        )
        return [FileReport(r[0], Outcome(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    @guarded
    def contents(self, where: tuple[str, list] | None = None) -> list[tuple[str, list[str]]]:
        """(sha256, its paths in order) of every stored content, by first path.

        ``where`` is a condition on ``files f`` (Filter.sql): only matching paths count.
        """
        cond, args = where or ("1", [])
        rows = self._conn().execute(
            "SELECT f.sha256, f.path FROM files f JOIN contents c ON c.sha256 = f.sha256 "
            f"WHERE {cond} ORDER BY f.path", args)
        out: dict[str, list[str]] = {}
        for sha, path in rows:
            out.setdefault(sha, []).append(path)
        return list(out.items())

    @guarded
    def chunks_of(self, sha256: str) -> list[Chunk]:
        """The chunks of one stored content, in order ([] when it is no longer stored)."""
        rows = self._conn().execute(
            "SELECT text, page, start, end, ordinal, heading FROM chunks WHERE sha256 = ? "
            "ORDER BY ordinal", (sha256,))
        return [Chunk(*r) for r in rows]

    @guarded
    def indexed_times(self) -> dict[str, float]:
        """When each path's row was last written (read, renamed or failed), epoch seconds."""
        return dict(self._conn().execute("SELECT path, updated FROM files").fetchall())

    @guarded
    def file_rows(self) -> dict[str, FileRow]:
        """Change-detection facts for every known path."""
        rows = self._conn().execute(
            "SELECT path, sha256, size, mtime_ns, outcome, stale FROM files"
        )
        return {r[0]: FileRow(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}

    @guarded
    def content_recipes(self) -> dict[str, tuple[str, str]]:
        """sha256 -> (recipe, embedder) of every stored content."""
        rows = self._conn().execute("SELECT sha256, recipe, embedder FROM contents")
        return {r[0]: (r[1], r[2]) for r in rows}

    @guarded
    def stats(self) -> dict[str, Any]:
        """Counts for `ragpipe status`."""
        conn = self._conn()
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        gen = self.current_generation()
        return {
            "files": one("SELECT count(*) FROM files"),
            "documents": one("SELECT count(*) FROM contents"),
            "chunks": one("SELECT count(*) FROM chunks"),
            "vectors": gen.vectors if gen else 0,
            "failed": one("SELECT count(*) FROM files WHERE outcome NOT IN ('ok','ok_partial')"),
            "stale": one("SELECT count(*) FROM files WHERE stale = 1"),
            "generation": gen.id if gen else 0,
            "last_sync": gen.created if gen else None,
        }

    # ----- checking ------------------------------------------------------------------------
    def fsck(self, notes: list[str] | None = None) -> list[str]:
        """Cross-check SQLite against the live FAISS file; returns the problems (check.fsck)."""
        return check.fsck(self, notes)

    def damage(self) -> list[str]:
        """What SQLite's quick check finds wrong with the database file (check.damage)."""
        return check.damage(self.db_path)

    def health(self) -> list[str]:
        """The quick check of `ragpipe status` (check.health)."""
        return check.health(self)

    # ----- writing -------------------------------------------------------------------------
    def write_lock(self, command: str) -> AbstractContextManager[None]:
        """The index's write lock (lock.write_lock): raises IndexLocked if another holds it."""
        return lock.write_lock(self.path, command)

    @contextmanager
    def writer(
        self, meta: dict[str, str], command: str = "sync", salvage: bool = False
    ) -> Iterator[Writer]:
        """Take the index's write lock and yield a Writer; creates the index if needed.

        A damaged database raises IndexDamaged before anything is written. With
        ``salvage`` (fsck --repair) its readable rows are first copied into a new
        database (salvage.py); ``Writer.salvaged`` says what that did.
        """
        private.make_dir(self.path)
        private.tighten(self.path)
        with guard(self.path.name), self.write_lock(command):
            saved: list[str] = []
            damage = self.damage() if self.exists() else []
            if damage and not salvage:
                raise damaged(self.path.name, damage)
            if damage:
                self.close()  # this thread's connection would still read the damaged file
                saved = salvage_database(self.path)
            conn = connect(self.db_path)
            try:
                fmt = check_format(conn, self.path.name)
                conn.executescript(SCHEMA)
                w = Writer(self, conn, meta, fmt)
                w.salvaged = saved
                yield w
                w.rollback()  # anything not published is discarded
            finally:
                conn.close()
                with self._faiss_lock:
                    self._loaded = None
