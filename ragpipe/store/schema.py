"""The index database: its SQL schema and how connections to it are opened.

The schema runs (``executescript``) each time a writer opens the index, under the write
lock, so it also migrates: ``CREATE ... IF NOT EXISTS`` adds what is new, and the
``DROP ... IF EXISTS`` lines remove what older versions kept. Readers never run it.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import IndexDamaged, IndexMismatch
from . import private

# 2: keyword windows, kept by the writer. A ragpipe that writes format 1 knows nothing of
# them and would leave them stale, so it must refuse these indexes (its Writer does); this
# one upgrades a format-1 index by building its windows (Writer.__init__).
FORMAT_VERSION = 2
UPGRADES_FROM = frozenset({"1"})
DB_NAME = "index.sqlite"
LOCK_NAME = "write.lock"
# SQLite's primary result codes for a damaged file (extended codes add higher bits).
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26

SCHEMA = """
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
-- chunk_windows_fts, each chunk's window for BM25 ranking, is created and filled by the
-- writer (keywords.rebuild_windows): it is contentless, so no trigger can keep it.
-- Dropped: keyword indexes of each chunk with its neighbours' words (context_fts, later
-- chunk_context_fts); an index made while they existed sheds them the next time it is written.
DROP TRIGGER IF EXISTS chunks_ctx_ai;
DROP TRIGGER IF EXISTS chunks_ctx_ad;
DROP TABLE IF EXISTS context_fts;
DROP VIEW IF EXISTS chunk_contexts;
DROP TRIGGER IF EXISTS chunks_context_ai;
DROP TRIGGER IF EXISTS chunks_context_ad;
DROP TABLE IF EXISTS chunk_context_fts;
DROP VIEW IF EXISTS chunk_context;
CREATE TABLE IF NOT EXISTS generations(
    id INTEGER PRIMARY KEY,
    faiss_file TEXT NOT NULL,
    faiss_sha256 TEXT NOT NULL,
    vectors INTEGER NOT NULL,
    created REAL NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
"""


def connect(db: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection to ``db``: explicit transactions only; WAL and full sync unless read-only.

    A new database file is created private (see private.py).
    """
    if readonly:
        uri = Path(db).absolute().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    else:
        private.create_new(db)  # SQLite takes an empty file as a new database
        conn = sqlite3.connect(db, check_same_thread=False)
    conn.isolation_level = None  # explicit BEGIN/COMMIT only
    conn.execute("PRAGMA busy_timeout=10000")
    if not readonly:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    return conn


def is_damage(exc: BaseException) -> bool:
    """True when ``exc`` is SQLite saying the file is damaged or not a database.

    Other errors (busy, locked, I/O, a full disk) say nothing about the file's content.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and (
        (code & 0xFF) in (SQLITE_CORRUPT, SQLITE_NOTADB)
    )


def damaged(name: str, found: list[str], repair: bool = False) -> IndexDamaged:
    """The one-line error for a damaged index database; ``found``: what SQLite said.

    ``repair``: worded for fsck, which names the repair instead of itself.
    """
    detail = found[0] + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
    if repair:
        fix = f"repair with `ragpipe fsck --repair --index {name}` (it keeps the damaged file)"
    else:
        fix = f"run `ragpipe fsck --index {name}`"
    return IndexDamaged(f"index {name!r} is damaged: {detail}; {fix}")


@contextmanager
def guard(name: str) -> Iterator[None]:
    """Turn SQLite's "damaged" errors raised inside into IndexDamaged for index ``name``."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        raise damaged(name, [str(exc)]) from exc


F = TypeVar("F", bound=Callable[..., Any])


def guarded(method: F) -> F:
    """Run a Store method under ``guard`` (its index is named by ``self.path``)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with guard(self.path.name):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_format(conn: sqlite3.Connection, name: str) -> str:
    """The index's format version; raises IndexMismatch for one this ragpipe cannot write.

    Runs before SCHEMA, so a refused index is left exactly as it was.
    """
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return str(FORMAT_VERSION)  # a new index
    row = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    fmt = row[0] if row else str(FORMAT_VERSION)
    if fmt != str(FORMAT_VERSION) and fmt not in UPGRADES_FROM:
        raise IndexMismatch(
            f"index {name!r} has format {fmt}, this ragpipe writes {FORMAT_VERSION}: "
            "build a new index"
        )
    return fmt
