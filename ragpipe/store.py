"""The index on disk: SQLite (files, contents, chunks, vectors, generations) + FAISS files.

Layout of ``indexes/NAME/``::

    index.sqlite            WAL-mode database, the source of truth
    vectors-000007.faiss    the FAISS file of generation 7 (derived, rebuildable)
    write.lock              held (flock) by the one process writing

Why vectors are also kept in SQLite: the FAISS file is then a pure cache of
the database, so a lost or corrupt FAISS file is rebuilt exactly without
re-embedding, and a crash can never leave vectors and metadata out of step.

A change becomes visible only by ``Writer.publish``: the new FAISS file is
written to a temporary name, fsynced and renamed, and then one SQLite commit
adds the ``generations`` row naming it with its SHA-256 together with all
metadata changes. A crash before that commit leaves the previous generation
untouched; the orphaned file is removed on the next publish.

Content is stored once per SHA-256 (``contents``/``chunks``); ``files`` maps
paths to contents, so identical files share chunks and a rename moves a row.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .datatypes import Chunk, FileReport, Hit, Outcome
from .errors import IndexCorrupt, IndexLocked, IndexMismatch, IndexNotFound

FORMAT_VERSION = 1
DB_NAME = "index.sqlite"
LOCK_NAME = "write.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contents(
    sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    pages INTEGER NOT NULL,
    recipe TEXT NOT NULL,          -- reader version + chunking settings
    embedder TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS files(
    path TEXT PRIMARY KEY,
    sha256 TEXT REFERENCES contents(sha256),   -- NULL when never read successfully
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    pages INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    stale INTEGER NOT NULL DEFAULT 0,          -- 1: last read failed, old chunks kept
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY,          -- also the FAISS vector id
    sha256 TEXT NOT NULL REFERENCES contents(sha256),
    ordinal INTEGER NOT NULL,
    page INTEGER,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    heading TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_sha ON chunks(sha256, ordinal);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
-- Keyword index of each chunk with its context: column ``text`` is the chunk, column
-- ``near`` the words of its previous and next chunk that it does not share (same document,
-- overlaps once). Searched with a lower weight on ``near`` (retrieval.keyword_context), a
-- chunk is judged with the words around it; measured in the README (Retrieval quality). Kept by
-- triggers, so it follows every insert and delete in the same transaction.
DROP TRIGGER IF EXISTS chunks_ctx_ai;
DROP TRIGGER IF EXISTS chunks_ctx_ad;
DROP TABLE IF EXISTS context_fts;
DROP VIEW IF EXISTS chunk_contexts;
CREATE VIEW IF NOT EXISTS chunk_context AS SELECT c.id AS id, c.text AS text, trim(
    coalesce((SELECT CASE WHEN p.page IS c.page AND p.end >= c.start
                          THEN substr(p.text, 1, c.start - p.start) ELSE p.text END
              FROM chunks p WHERE p.sha256 = c.sha256 AND p.ordinal = c.ordinal - 1), '')
    || ' ' ||
    coalesce((SELECT CASE WHEN n.page IS c.page AND n.start < c.end
                          THEN substr(n.text, c.end - n.start + 1) ELSE n.text END
              FROM chunks n WHERE n.sha256 = c.sha256 AND n.ordinal = c.ordinal + 1), '')
    ) AS near FROM chunks c;
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_context_fts USING fts5(
    text, near, tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_context_ai AFTER INSERT ON chunks BEGIN
    DELETE FROM chunk_context_fts WHERE rowid IN (SELECT id FROM chunks
        WHERE sha256 = new.sha256 AND ordinal BETWEEN new.ordinal - 1 AND new.ordinal + 1);
    INSERT INTO chunk_context_fts(rowid, text, near) SELECT id, text, near FROM chunk_context
        WHERE id IN (SELECT id FROM chunks WHERE sha256 = new.sha256
                     AND ordinal BETWEEN new.ordinal - 1 AND new.ordinal + 1);
END;
CREATE TRIGGER IF NOT EXISTS chunks_context_ad AFTER DELETE ON chunks BEGIN
    DELETE FROM chunk_context_fts WHERE rowid IN (old.id, (SELECT id FROM chunks WHERE
        sha256 = old.sha256 AND ordinal = old.ordinal - 1), (SELECT id FROM chunks WHERE
        sha256 = old.sha256 AND ordinal = old.ordinal + 1));
    INSERT INTO chunk_context_fts(rowid, text, near) SELECT id, text, near FROM chunk_context
        WHERE id IN (SELECT id FROM chunks WHERE sha256 = old.sha256
                     AND ordinal IN (old.ordinal - 1, old.ordinal + 1));
END;
CREATE TABLE IF NOT EXISTS generations(
    id INTEGER PRIMARY KEY,
    faiss_file TEXT NOT NULL,
    faiss_sha256 TEXT NOT NULL,
    vectors INTEGER NOT NULL,
    created REAL NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
"""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# Exact (flat) search below this many chunks, IVF from there on; see benchmarks/bench_retrieval.py.
ANN_THRESHOLD = 50_000
IVF_LISTS_PER_SQRT = 4  # nlist = 4 * sqrt(n)
IVF_NPROBE = 64  # lists scanned per query: recall@10 >= 0.95 against exact search, measured


def ivf_nlist_for(n: int) -> int:
    """Number of IVF lists for ``n`` vectors (k-means wants >= 39 training points per list)."""
    return max(1, min(round(IVF_LISTS_PER_SQRT * math.sqrt(max(n, 1))), n // 39))


def _ivf_nlist(index: Any) -> int:
    """The number of lists of an IVF index; 0 for any other (flat) index."""
    import faiss

    try:
        return int(faiss.extract_index_ivf(index).nlist)
    except (RuntimeError, TypeError):
        return 0


def _needs_new_layout(index: Any, n: int, threshold: int) -> bool:
    """True when the index type no longer suits ``n`` vectors.

    That is: flat past the threshold, IVF below half of it (hysteresis), or IVF
    lists trained for a collection about 4x larger or smaller.
    """
    nlist = _ivf_nlist(index)
    if not nlist:
        return n >= threshold
    if n < threshold // 2:
        return True
    return not (nlist / 2 <= ivf_nlist_for(n) <= nlist * 2)


def _fill_context_index(conn: sqlite3.Connection) -> None:
    """Build chunk_context_fts once for an index made before it existed (derived data)."""
    if conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() and not conn.execute(
        "SELECT 1 FROM chunk_context_fts LIMIT 1"
    ).fetchone():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO chunk_context_fts(rowid, text, near) "
            "SELECT id, text, near FROM chunk_context"
        )
        conn.execute("COMMIT")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _connect(db: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(db, check_same_thread=False)
    conn.isolation_level = None  # explicit BEGIN/COMMIT only
    conn.execute("PRAGMA busy_timeout=10000")
    if not readonly:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    return conn


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
        # Approximate search (see build_faiss): the size from which publish writes an IVF
        # index, and the lists it scans per query (0: the value stored in the index).
        self.ann_threshold = ANN_THRESHOLD
        self.nprobe = 0

    # ----- opening -------------------------------------------------------------------------
    def exists(self) -> bool:
        """True when the index has been created."""
        return self.db_path.is_file()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not self.exists():
                raise IndexNotFound(
                    f"index {self.path.name!r} does not exist at {self.path}: build it with "
                    f"`ragpipe ingest FOLDER --index {self.path.name}`"
                )
            conn = _connect(self.db_path)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def meta(self) -> dict[str, str]:
        """The index's description: format, embedder, dimension, chunking, root."""
        return dict(self._conn().execute("SELECT key, value FROM meta").fetchall())

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
    def generations(self) -> list[Generation]:
        """All generation rows, newest first."""
        rows = self._conn().execute(
            "SELECT id, faiss_file, faiss_sha256, vectors, created FROM generations "
            "ORDER BY id DESC"
        )
        return [Generation(*r) for r in rows]

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
        import faiss

        f = self.path / gen.faiss_file
        if not f.is_file():
            raise IndexCorrupt(f"{f} is missing: repair with `ragpipe fsck --repair`")
        if _sha256_file(f) != gen.faiss_sha256:
            raise IndexCorrupt(f"{f} fails its checksum: repair with `ragpipe fsck --repair`")
        try:
            index = faiss.read_index(str(f))
        except Exception as exc:
            raise IndexCorrupt(
                f"{f} cannot be read ({exc}): repair with `ragpipe fsck --repair`"
            ) from None
        if index.ntotal != gen.vectors:
            raise IndexCorrupt(f"{f} holds {index.ntotal} vectors, expected {gen.vectors}")
        return index

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
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

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

        Exact on a flat index. On an IVF index ``nprobe`` lists are scanned; a
        filtered search that finds fewer than k there is repeated over every
        list (exact within the allowed ids), so it still returns k when k exist.
        """
        import faiss

        index = self._live_index(self.current_generation(conn))
        if index is None or index.ntotal == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        sel = None
        want = min(k, index.ntotal)
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return []
            sel = faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64))
            want = min(want, len(allowed_ids))
        nlist = _ivf_nlist(index)
        if nlist:
            nprobe = min(self.nprobe or faiss.extract_index_ivf(index).nprobe, nlist)
            # SWIG keyword arguments: mypy cannot see them.
            params: Any = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)  # type: ignore[call-arg]
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None  # type: ignore[call-arg]
        scores, ids = index.search(q, want, params=params)
        pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        if nlist and len(pairs) < want:
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nlist)  # type: ignore[call-arg]
            scores, ids = index.search(q, want, params=params)
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        return pairs

    def keyword_pairs(
        self,
        conn: sqlite3.Connection,
        match: str,
        k: int,
        where: tuple[str, list] | None = None,
        context: float = 0.0,
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25) of the ``k`` best FTS5 matches of ``match``, best first.

        ``match`` is an FTS5 query expression (see retrieval.keyword_query);
        ``where`` is a condition on ``files f`` from ``filter_sql``; ``context`` > 0
        ranks each chunk by its own words plus its neighbours' words weighted by
        ``context`` (chunk_context_fts), 0 by its own text only (chunks_fts).
        FTS5's bm25() is negative (lower is better); it is returned negated.
        """
        if not match or k <= 0:
            return []
        table, rank = self._keyword_rank(conn, context)
        sql = f"SELECT rowid, {rank} AS s FROM {table} WHERE {table} MATCH ?"
        args: list[Any] = [match]
        if where is not None:
            # "+rowid": without it SQLite hands the IN list to FTS5, which then runs the
            # whole MATCH once per allowed id (35 s instead of 50 ms at 100,000 chunks).
            sql += (
                " AND +rowid IN (SELECT c.id FROM chunks c JOIN files f ON f.sha256 = c.sha256 "
                f"WHERE {where[0]})"
            )
            args += where[1]
        sql += " ORDER BY s LIMIT ?"
        try:
            rows = conn.execute(sql, [*args, k]).fetchall()
        except sqlite3.OperationalError:  # a query FTS5 cannot parse: no keyword matches
            return []
        return [(int(r[0]), -float(r[1])) for r in rows]

    def keyword_scores(
        self, conn: sqlite3.Connection, match: str, ids: Sequence[int], context: float = 0.0
    ) -> dict[int, float]:
        """BM25 (negated, as keyword_pairs) of those chunks of ``ids`` that ``match`` matches.

        Fusion uses it for dense candidates outside the keyword top k: their real
        keyword score instead of a guess. "+rowid" makes SQLite run the MATCH once
        and filter its rows (about 10 ms for 100 ids at 100,000 chunks), instead of
        once per id.
        """
        if not match or not ids:
            return {}
        table, rank = self._keyword_rank(conn, context)
        marks = ",".join("?" * len(ids))
        sql = f"SELECT rowid, {rank} FROM {table} WHERE {table} MATCH ? AND +rowid IN ({marks})"
        try:
            rows = conn.execute(sql, [match, *map(int, ids)]).fetchall()
        except sqlite3.OperationalError:
            return {}
        return {int(r[0]): -float(r[1]) for r in rows}

    def _keyword_rank(self, conn: sqlite3.Connection, context: float) -> tuple[str, str]:
        """The FTS5 table to search and its bm25() expression for ``context``."""
        table = "chunk_context_fts" if context > 0 else "chunks_fts"
        if context > 0 and not (
            conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'chunk_context_fts'"
            ).fetchone()
            and conn.execute("SELECT 1 FROM chunk_context_fts LIMIT 1").fetchone()
        ):
            table = "chunks_fts"  # an index from before chunk_context_fts: next write fills it
        if table == "chunks_fts":
            return table, "bm25(chunks_fts)"
        return table, f"bm25({table}, 1.0, {float(context)})"

    def common_terms(
        self, conn: sqlite3.Connection, terms: Sequence[str], max_share: float, context: float = 0
    ) -> set[str]:
        """The ``terms`` that occur in more than ``max_share`` of the keyword index's rows.

        Terms are stemmed exactly as FTS5 stems them, by tokenizing them in a
        temporary FTS5 table and reading it through fts5vocab.
        """
        table = "chunks_fts"  # the chunk's own words decide what is common
        gen = self.current_generation(conn)
        n = gen.vectors if gen else 0
        if not terms or n == 0 or max_share >= 1:
            return set()
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms "
            "USING fts5(t, tokenize='porter unicode61')"
        )
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms_v "
            "USING fts5vocab(temp, 'query_terms', 'instance')"
        )
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_v "
            f"USING fts5vocab(main, '{table}', 'row')"
        )
        conn.execute("DELETE FROM temp.query_terms")
        conn.executemany(
            "INSERT INTO temp.query_terms(rowid, t) VALUES (?, ?)", list(enumerate(terms, 1))
        )
        out = set()
        for row, stem in conn.execute("SELECT doc, term FROM temp.query_terms_v").fetchall():
            hit = conn.execute(f"SELECT doc FROM temp.{table}_v WHERE term = ?", (stem,)).fetchone()
            if hit and hit[0] > max_share * n:
                out.add(terms[row - 1])
        return out

    def vectors_for(self, conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors of the given chunk ids (those that exist)."""
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 900):
            part = list(ids[start : start + 900])
            marks = ",".join("?" * len(part))
            for cid, blob in conn.execute(
                f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part
            ):
                out[cid] = np.frombuffer(blob, dtype=np.float32)
        return out

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

    def hits_in(self, conn: sqlite3.Connection, pairs: Sequence[tuple[int, float]]) -> list[Hit]:
        """Hits for (chunk id, score) pairs inside an open snapshot; unknown ids are skipped."""
        return self._hits(conn, pairs)

    def hits_for(self, pairs: Sequence[tuple[int, float]]) -> list[Hit]:
        """Hits for (chunk id, score) pairs, in the given order; unknown ids are skipped."""
        with self.snapshot() as conn:
            return self._hits(conn, pairs)

    def _hits(self, conn: sqlite3.Connection, pairs: Sequence[tuple[int, float]]) -> list[Hit]:
        if not pairs:
            return []
        ids = [i for i, _ in pairs]
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT c.id, c.text, c.page, c.start, c.end, c.heading, "
            f"(SELECT group_concat(path, char(0)) FROM (SELECT path FROM files f "
            f" WHERE f.sha256 = c.sha256 ORDER BY path)) "
            f"FROM chunks c WHERE c.id IN ({marks})",
            ids,
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

    @staticmethod
    def filter_sql(
        paths: Sequence[str] = (),
        kinds: Sequence[str] = (),
        modified_from_ns: int | None = None,
        modified_to_ns: int | None = None,
    ) -> tuple[str, list]:
        """A SQL condition on ``files f`` and its arguments.

        Path starts with one of ``paths``, kind is one of ``kinds``, and
        ``modified_from_ns <= mtime_ns < modified_to_ns``; empty parts are ignored.
        """
        conds: list[str] = []
        args: list[Any] = []
        prefixes = [p for p in paths if p]
        if prefixes:
            conds.append("(" + " OR ".join("(f.path >= ? AND f.path < ?)" for _ in prefixes) + ")")
            for p in prefixes:
                args += [p, p + "\U0010ffff"]
        kinds = [k for k in kinds if k]
        if kinds:
            conds.append(f"f.kind IN ({','.join('?' * len(kinds))})")
            args += list(kinds)
        if modified_from_ns is not None:
            conds.append("f.mtime_ns >= ?")
            args.append(int(modified_from_ns))
        if modified_to_ns is not None:
            conds.append("f.mtime_ns < ?")
            args.append(int(modified_to_ns))
        return (" AND ".join(conds) or "1"), args

    def chunk_ids_where(
        self,
        path_prefix: str = "",
        kinds: Iterable[str] = (),
        modified_from_ns: int | None = None,
        modified_to_ns: int | None = None,
        conn: sqlite3.Connection | None = None,
        paths: Sequence[str] = (),
    ) -> list[int]:
        """Ids of chunks of files matching the filter (see ``filter_sql``)."""
        cond, args = self.filter_sql(
            [path_prefix, *paths], list(kinds), modified_from_ns, modified_to_ns
        )
        sql = f"SELECT DISTINCT c.id FROM chunks c JOIN files f ON f.sha256 = c.sha256 WHERE {cond}"
        return [r[0] for r in (conn or self._conn()).execute(sql, args)]

    def files(self) -> list[FileReport]:
        """The recorded outcome of every file, by path."""
        rows = self._conn().execute(
            "SELECT path, outcome, message, pages, chunks, kind FROM files ORDER BY path"
        )
        return [FileReport(r[0], Outcome(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def file_rows(self) -> dict[str, FileRow]:
        """Change-detection facts for every known path."""
        rows = self._conn().execute(
            "SELECT path, sha256, size, mtime_ns, outcome, stale FROM files"
        )
        return {r[0]: FileRow(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}

    def content_recipes(self) -> dict[str, tuple[str, str]]:
        """sha256 -> (recipe, embedder) of every stored content."""
        rows = self._conn().execute("SELECT sha256, recipe, embedder FROM contents")
        return {r[0]: (r[1], r[2]) for r in rows}

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
    def fsck(self) -> list[str]:
        """Cross-check SQLite against the live FAISS file; returns the problems found."""
        import faiss

        problems: list[str] = []
        conn = self._conn()
        for (msg,) in conn.execute("PRAGMA integrity_check"):
            if msg != "ok":
                problems.append(f"sqlite: {msg}")
        try:
            conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
            conn.execute(
                "INSERT INTO chunk_context_fts(chunk_context_fts) VALUES ('integrity-check')"
            )
        except sqlite3.DatabaseError as exc:
            problems.append(f"keyword index: {exc}")
        meta = self.meta()
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
        gen = self.current_generation()
        chunk_ids = {r[0] for r in conn.execute("SELECT id FROM chunks")}
        if gen is None:
            if chunk_ids:
                problems.append("chunks are stored but no generation was published")
            return problems
        try:
            index = self.load_faiss(gen)
        except IndexCorrupt as exc:
            problems.append(str(exc))
            return problems
        faiss_ids = set(faiss.vector_to_array(index.id_map).tolist())
        orphans, missing = faiss_ids - chunk_ids, chunk_ids - faiss_ids
        if orphans:
            problems.append(f"{len(orphans)} vectors in {gen.faiss_file} have no chunk")
        if missing:
            problems.append(f"{len(missing)} chunks have no vector in {gen.faiss_file}")
        if index.d != dim:
            problems.append(f"{gen.faiss_file} has dimension {index.d}, the index says {dim}")
        return problems

    # ----- writing -------------------------------------------------------------------------
    @contextmanager
    def writer(self, meta: dict[str, str], command: str = "sync") -> Iterator[Writer]:
        """Take the index's write lock and yield a Writer; creates the index if needed."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Path(lock_path).read_text(errors="replace").strip() or "another process"
                raise IndexLocked(
                    f"index {self.path.name!r} is being written by {holder}; "
                    "wait for it to finish"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} ({command}, since {time.ctime()})".encode())
            conn = _connect(self.db_path)
            try:
                conn.executescript(_SCHEMA)
                _fill_context_index(conn)
                w = Writer(self, conn, meta)
                yield w
                w.rollback()  # anything not published is discarded
            finally:
                conn.close()
                with self._faiss_lock:
                    self._loaded = None
        finally:
            os.ftruncate(fd, 0)
            os.close(fd)  # releases the flock


class Writer:
    """Changes to an index, made visible together by ``publish``."""

    def __init__(self, store: Store, conn: sqlite3.Connection, meta: dict[str, str]) -> None:
        self.store = store
        self.conn = conn
        self._in_txn = False
        self._added: list[int] = []
        self._removed: list[int] = []
        self._changed = False
        self._begin()
        old = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        want = {"format_version": str(FORMAT_VERSION), **meta}
        if old.get("format_version", str(FORMAT_VERSION)) != str(FORMAT_VERSION):
            raise IndexMismatch(
                f"index {store.path.name!r} has format {old['format_version']}, this ragpipe "
                f"writes {FORMAT_VERSION}: build a new index"
            )
        self.previous_meta = old
        for key, value in want.items():
            if old.get(key) != value:
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
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
        self._changed = True
        crash_point("content")

    def chunks_of(self, sha256: str) -> list[tuple[int, str]]:
        """(chunk id, text) of one content, in order."""
        return self.conn.execute(
            "SELECT id, text FROM chunks WHERE sha256 = ? ORDER BY ordinal", (sha256,)
        ).fetchall()

    def replace_vectors(self, sha256: str, embedder: str, ids: Sequence[int], vectors: np.ndarray):
        """Swap in new vectors for existing chunks (embedder change), keeping their text."""
        for cid, v in zip(ids, np.ascontiguousarray(vectors, dtype=np.float32), strict=True):
            self.conn.execute("UPDATE chunks SET vector = ? WHERE id = ?", (v.tobytes(), cid))
            self._removed.append(cid)
            self._added.append(cid)
        self.conn.execute("UPDATE contents SET embedder = ? WHERE sha256 = ?", (embedder, sha256))
        self._changed = True

    def _drop_content_chunks(self, sha256: str) -> None:
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE sha256 = ?", (sha256,))]
        if ids:
            self.conn.execute("DELETE FROM chunks WHERE sha256 = ?", (sha256,))
            self._removed.extend(ids)

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
        self.conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
        self.conn.execute("DELETE FROM chunk_context_fts")
        self.conn.execute(
            "INSERT INTO chunk_context_fts(rowid, text, near) "
            "SELECT id, text, near FROM chunk_context"
        )
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
    def _vectors(self, ids: Sequence[int]) -> np.ndarray:
        dim = int(self.conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()[0])
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for start in range(0, len(ids), 900):
            part = list(ids[start : start + 900])
            rows = dict(
                self.conn.execute(
                    f"SELECT id, vector FROM chunks WHERE id IN ({','.join('?' * len(part))})",
                    part,
                ).fetchall()
            )
            for j, cid in enumerate(part):
                out[start + j] = np.frombuffer(rows[cid], dtype=np.float32)
        return out

    def build_faiss(self, base: Any = None) -> Any:
        """The FAISS index of the state inside this transaction.

        With ``base`` (the previous generation's index), only removed and added
        vectors are applied; otherwise everything is rebuilt from SQLite.

        Below ``store.ann_threshold`` chunks the index is exact: IndexIDMap2 over
        IndexFlatIP. From there on it is an IndexIVFFlat (inner product,
        ``4*sqrt(n)`` lists, trained on the stored vectors), chosen over HNSW
        because IVF removes ids exactly (``remove_ids``), so deletes stay exact
        and incremental; HNSW cannot delete. The lists are re-trained when the
        collection grows or shrinks about 4-fold, and the index turns flat again
        below half the threshold. Measured in benchmarks/bench_retrieval.py.
        """
        import faiss

        dim = int(self.conn.execute("SELECT value FROM meta WHERE key='dim'").fetchone()[0])
        n = int(self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
        if base is not None and _needs_new_layout(base, n, self.store.ann_threshold):
            base = None
        if base is None:
            ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks ORDER BY id")]
            index: Any
            if n >= self.store.ann_threshold:
                nlist = ivf_nlist_for(n)
                index = faiss.IndexIVFFlat(
                    faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT
                )
                step = max(1, len(ids) // (64 * nlist))  # FAISS samples 256/list at most
                index.train(self._vectors(ids[::step]))
                index.nprobe = min(IVF_NPROBE, nlist)
            else:
                index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        else:
            index = base
            removed = np.asarray(sorted(set(self._removed)), dtype=np.int64)
            if len(removed):
                index.remove_ids(faiss.IDSelectorBatch(removed))
            live = {r[0] for r in self.conn.execute("SELECT id FROM chunks")}
            ids = sorted(i for i in set(self._added) if i in live)
        for start in range(0, len(ids), 8192):
            part = ids[start : start + 8192]
            index.add_with_ids(self._vectors(part), np.asarray(part, dtype=np.int64))
        return index

    def publish(self, note: str = "", rebuild: bool = False) -> int:
        """Make every change so far visible as one new generation; returns its id.

        ``rebuild`` writes a FAISS file built from SQLite alone, even with no changes.
        """
        import faiss

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
        final = self.store.path / name
        tmp = self.store.path / f".{name}.tmp"
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        digest = _sha256_file(tmp)
        os.replace(tmp, final)
        _fsync_dir(self.store.path)
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
