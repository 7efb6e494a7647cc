"""Salvaging a damaged index database: its readable rows, copied into a new one.

When SQLite's quick check fails, some pages of ``index.sqlite`` cannot be read.
``salvage`` copies every row that can still be read, table by table in rowid order,
stepping over the unreadable stretches (``readable_rows``), into a new database;
drops the documents that lost chunks (their files are then read again by a sync);
and puts the new database in place. The damaged file is never deleted: it is
renamed ``index.sqlite.damaged-YYYYmmdd-HHMMSS`` (with its ``-wal`` and ``-shm``).

The keyword index fills as the chunks are copied; the FAISS file and the keyword
windows are rebuilt by ``Writer.repair``, which ``fsck --repair`` runs next, under
the same write lock.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import IndexDamaged
from .keywords import WINDOWS_KEY
from .schema import DB_NAME, SCHEMA, connect, is_damage
from .vectors import fsync_dir

TABLES = ("meta", "contents", "files", "chunks", "generations")  # the keyword tables are derived
_MIN_ROWID, _MAX_ROWID = -(2**63), 2**63 - 1


def salvage(folder: Path) -> list[str]:
    """Replace ``folder/index.sqlite`` by a copy of its readable rows; returns what was done.

    Raises IndexDamaged, after moving the file aside, when nothing can be read from it.
    """
    db, tmp = folder / DB_NAME, folder / f".{DB_NAME}.salvage"
    _remove(tmp)  # left by a salvage that was interrupted
    copied: dict[str, int] = {}
    gaps: list[str] = []
    src = connect(db, readonly=True)
    # A file cut short is refused whole ("malformed") unless the schema is writable;
    # then SQLite reads the pages that are there. Read-only: nothing is written.
    src.execute("PRAGMA writable_schema=ON")
    dst = connect(tmp)
    try:
        dst.executescript(SCHEMA)
        dst.execute("BEGIN")
        try:
            for table in TABLES:
                copied[table] = _copy(src, dst, table, gaps)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            unreadable = str(exc)  # the schema itself: nothing can be found
        else:
            unreadable = ""
        # Without the windows' recipe the next Writer re-creates them (and readers use
        # chunks_fts until then), so an interrupted repair leaves no table missing.
        dst.execute("DELETE FROM meta WHERE key = ?", (WINDOWS_KEY,))
        incomplete = _drop_incomplete(dst)
        derived = _fill_meta(dst)
        dst.execute("COMMIT")
    finally:
        src.close()
        dst.close()
    aside = _move_aside(folder)
    if unreadable:
        _remove(tmp)
        raise IndexDamaged(
            f"index {folder.name!r} cannot be salvaged ({unreadable}): the damaged file was "
            f"kept as {aside.name}; rebuild the index with "
            f"`ragpipe ingest FOLDER --index {folder.name}`"
        )
    os.replace(tmp, db)
    fsync_dir(folder)
    done = [
        f"copied what could be read into a new database: {copied['files']} files, "
        f"{copied['contents']} documents, {copied['chunks']} chunks"
    ]
    if gaps:
        shown = ", ".join(gaps[:5]) + (", ..." if len(gaps) > 5 else "")
        done.append(f"could not read {len(gaps)} damaged stretch(es) of rows ({shown}): those "
                    "rows are lost; the documents among them are read again by a sync")
    if incomplete:
        done.append(f"{incomplete} documents lost chunks or their record and were dropped: "
                    "their files are read again by a sync")
    if derived:
        done.append(f"restored the index's {', '.join(derived)} from the stored documents")
    done.append(f"kept the damaged database as {aside} (delete it once the index is back)")
    return done


def readable_rows(
    conn: sqlite3.Connection, table: str, cols: list[str], gaps: list[str]
) -> Iterator[tuple]:
    """The rows of ``table`` (``cols``) that can be read, in rowid order.

    Reads in batches; where a batch fails, one row at a time, and past a row that
    cannot be read, it finds the next readable rowid (``_next_readable``) and notes
    the stretch skipped in ``gaps``.
    """
    sql = (f"SELECT rowid, {', '.join(cols)} FROM {table} WHERE rowid >= ? "
           "ORDER BY rowid LIMIT ?")
    start: int | None = _MIN_ROWID
    while start is not None:
        batch = _try(conn, sql, (start, 256)) or _try(conn, sql, (start, 1))
        if batch is None:
            after = _next_readable(conn, sql, start)
            gaps.append(f"{table} rowids {start if start > _MIN_ROWID else 'first'}"
                        f"..{after - 1 if after is not None else 'last'}")
            start = after
            continue
        if not batch:
            return
        yield from (row[1:] for row in batch)
        last = batch[-1][0]
        start = last + 1 if last < _MAX_ROWID else None


def _try(conn: sqlite3.Connection, sql: str, args: tuple) -> list[tuple] | None:
    """The rows of one query, or None where SQLite finds the pages damaged."""
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return None


def _next_readable(conn: sqlite3.Connection, sql: str, start: int) -> int | None:
    """The lowest rowid from which ``sql`` reads again, past an unreadable row at ``start``.

    Reading from a rowid fails while the first row at or after it is unreadable, so
    the answer is found by doubling steps, then halving (a seek per probe, not a scan).
    Stretches of readable rows shorter than a step may be skipped with the damage.
    """
    bad, step = start, 1
    while True:
        probe = start + step
        if probe > _MAX_ROWID:
            return None  # nothing readable after the damage
        if _try(conn, sql, (probe, 1)) is not None:
            break
        bad, step = probe, step * 2
    good = probe
    while good - bad > 1:
        mid = (bad + good) // 2
        if _try(conn, sql, (mid, 1)) is None:
            bad = mid
        else:
            good = mid
    return good


def _copy(src: sqlite3.Connection, dst: sqlite3.Connection, table: str, gaps: list[str]) -> int:
    """Copy the readable rows of one table (the columns both databases have); returns them."""
    have = {r[1] for r in src.execute(f"PRAGMA table_info({table})")}
    cols = [r[1] for r in dst.execute(f"PRAGMA table_info({table})") if r[1] in have]
    if not cols:
        gaps.append(f"table {table} not found")
        return 0
    marks = ", ".join("?" * len(cols))
    cur = dst.executemany(
        f"INSERT OR IGNORE INTO {table}({', '.join(cols)}) VALUES ({marks})",
        readable_rows(src, table, cols, gaps),
    )
    return cur.rowcount


def _drop_incomplete(conn: sqlite3.Connection) -> int:
    """Drop the documents that lost chunks (or their content row); returns how many.

    A document's chunks are numbered 0..n-1, and its files record n: a gap, a
    shortfall or no chunks at all means rows were lost. Its files then point at
    content that is not stored, so ``Writer.repair`` marks them to be read again.
    """
    shas = [r[0] for r in conn.execute(
        "SELECT c.sha256 FROM contents c LEFT JOIN (SELECT sha256, count(*) AS n, "
        "max(ordinal) AS last FROM chunks GROUP BY sha256) k ON k.sha256 = c.sha256 "
        "WHERE k.n IS NULL OR k.n != k.last + 1 OR k.n < (SELECT max(f.chunks) FROM files f "
        "WHERE f.sha256 = c.sha256 AND f.outcome IN ('ok', 'ok_partial')) "
        "UNION SELECT sha256 FROM chunks WHERE sha256 NOT IN (SELECT sha256 FROM contents)"
    )]
    for sha in shas:
        conn.execute("DELETE FROM chunks WHERE sha256 = ?", (sha,))
        conn.execute("DELETE FROM contents WHERE sha256 = ?", (sha,))
    return len(shas)


def _fill_meta(conn: sqlite3.Connection) -> list[str]:
    """Restore lost index facts that the stored rows still tell; returns the keys restored."""
    have = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    found = {
        "embedder": "SELECT embedder FROM contents GROUP BY embedder ORDER BY count(*) DESC",
        "chunking": "SELECT recipe FROM contents GROUP BY recipe ORDER BY count(*) DESC",
        "dim": "SELECT length(vector) / 4 FROM chunks GROUP BY 1 ORDER BY count(*) DESC",
    }
    restored = []
    for key, sql in found.items():
        row = conn.execute(sql + " LIMIT 1").fetchone()
        if key not in have and row is not None:
            conn.execute("INSERT INTO meta VALUES (?, ?)", (key, str(row[0])))
            restored.append(key)
    return restored


def _move_aside(folder: Path) -> Path:
    """Rename the damaged database (and its WAL) aside; returns its new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder / f"{DB_NAME}.damaged-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = folder / f"{DB_NAME}.damaged-{stamp}-{n}"
    os.replace(folder / DB_NAME, aside)
    # The new database must never meet the old WAL. A WAL with frames goes with the file
    # it belongs to; an empty one, and the -shm (an index of the WAL), hold nothing.
    wal, shm = folder / f"{DB_NAME}-wal", folder / f"{DB_NAME}-shm"
    if wal.exists() and wal.stat().st_size:
        os.replace(wal, f"{aside}-wal")
    wal.unlink(missing_ok=True)
    shm.unlink(missing_ok=True)
    fsync_dir(folder)
    return aside


def _remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
