"""The web app's own records beside the indexes: conversations, feedback, background syncs.

One SQLite file, ``INDEXES/.ui/app.sqlite``. It holds questions and answers that quote
documents, so like an index it is readable by its owner only (folder 0700, file 0600,
store/private.py). The folder's name starts with a dot, so it is never taken for an
index (``Settings.index_dir`` refuses such names). Each module owns its tables:
``conversations`` (conversations, messages), ``feedback``, ``jobs``, ``accounts``
(users, memberships, sessions, login_failures) and ``audit``; this one
creates them and opens connections.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .store import private

FOLDER = ".ui"
DB_NAME = "app.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations(
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,              -- the browser's token until sign-in exists
    idx TEXT NOT NULL,                -- the index it asks
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations(owner, updated);
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,               -- user | assistant
    content TEXT NOT NULL,
    question TEXT NOT NULL DEFAULT '',  -- assistant turns: the question answered
    found INTEGER,                    -- assistant turns: 1 answered, 0 "not found"; NULL error
    detail TEXT NOT NULL DEFAULT '{}',  -- JSON: sources, citations, model, settings, scope
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation, id);
CREATE TABLE IF NOT EXISTS feedback(
    id INTEGER PRIMARY KEY,
    message INTEGER UNIQUE NOT NULL,  -- the rated answer (kept when its chat is deleted)
    owner TEXT NOT NULL,
    idx TEXT NOT NULL,
    rating INTEGER NOT NULL,          -- 1 thumbs up, -1 thumbs down
    comment TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    found INTEGER NOT NULL,
    detail TEXT NOT NULL,             -- JSON: sources, history, model, settings
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs(
    id INTEGER PRIMARY KEY,
    idx TEXT NOT NULL,
    folder TEXT NOT NULL,
    state TEXT NOT NULL,              -- running | done | failed | cancelled | interrupted
    files_done INTEGER NOT NULL DEFAULT 0,
    files_total INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    cancel INTEGER NOT NULL DEFAULT 0,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_idx ON jobs(idx, id);
CREATE TABLE IF NOT EXISTS users(
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,               -- Argon2id, with its parameters and salt
    admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships(
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    grp TEXT NOT NULL,
    PRIMARY KEY(user, grp)
);
CREATE TABLE IF NOT EXISTS sessions(
    token_hash TEXT PRIMARY KEY,      -- SHA-256 of the token; the token is never stored
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures(
    user TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_user ON login_failures(user, at);
CREATE TABLE IF NOT EXISTS audit(
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    idx TEXT NOT NULL,
    documents TEXT NOT NULL,          -- JSON: paths of the retrieved documents
    chunks TEXT NOT NULL,             -- JSON: their chunk ids
    answer INTEGER,                   -- the answer's message id (NULL: none stored)
    model TEXT NOT NULL,
    outcome TEXT NOT NULL             -- answered | not_found | stopped | failed | busy
);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
"""


def db_path(indexes: Path) -> Path:
    """Where the app's records live for an indexes folder."""
    return Path(indexes) / FOLDER / DB_NAME


def removed_dir(indexes: Path) -> Path:
    """Where documents removed from the web app are kept (pipeline/documents.remove)."""
    return Path(indexes) / FOLDER / "removed"


_ready: set[Path] = set()  # databases whose tables this process has created
_ready_lock = threading.Lock()


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the app database (autocommit), closed on leaving the block.

    The file is created private with its tables if new. One connection per use: the web
    server's sessions and background syncs run in threads, and an SQLite connection
    belongs to the thread that opened it.
    """
    path = Path(path)
    with _ready_lock:
        if path not in _ready or not path.is_file():
            private.make_dir(path.parent)
            private.create_new(path)
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        with _ready_lock:
            if path not in _ready or not path.is_file():
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
                _ready.add(path)
        yield conn
    finally:
        conn.close()
