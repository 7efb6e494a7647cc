"""Keyword search in the index's FTS5 tables, inside a read snapshot.

BM25 ranks each chunk by its *window*: the chunk's own text and, at half
weight (``NEIGHBOUR_WEIGHT``), its neighbours' (one on each side, same
document), kept in the contentless FTS5 table ``chunk_windows_fts`` under the
chunk's id. A term the chunk shares only with the sentences around it still
counts, as it does for a reader. Measured with ``ragpipe eval retrieval``
(README: Retrieval quality, with each step), nDCG@10 from the chunk's own text
to its window, both with the question words as stopwords: SciFact train bm25
0.686 -> 0.703, hybrid 0.738 -> 0.743; SQuAD v1.1 bm25 0.880 -> 0.883, hybrid
0.901 -> 0.905.

A caveat, and why it is acceptable: FTS5's IDF, log((N - n + 0.5) / (n + 0.5)),
is ~0 for a term in half the rows or more, and a window holds a term about
three times as often as a chunk. In a six-document folder that flattened
"claim", "travel" and "expenses", so the question's "I" and "do" decided, and a
Q&A page full of "do I" outranked the travel policy's section on claiming
travel expenses. The question's function words are stopwords now
(retrieval.QUESTION_WORDS), and the sample folder's questions rank their
section first again (tests/test_e2e.py). In larger folders few content words
reach half the windows.

The table keeps no text (a window repeats its neighbours' text, which would
triple it), so the writer adds and removes windows itself, in the same
transaction as the chunks: ``add_windows`` after a content's chunks are
inserted, ``remove_windows`` before they are deleted (FTS5 needs the exact
text to delete it; a content's chunks never change, so it is rebuilt from them).
``WINDOWS`` names the window recipe, recorded in ``meta``; an index written
before it, or with another recipe, is re-windowed by the next writer
(``rebuild_windows``), and until then searches use ``chunks_fts``
(Store.keyword_search).

``chunks_fts`` is an external-content FTS5 table over ``chunks.text`` (porter
stemming), kept by the triggers in schema.py. It still serves the term
statistics (how many chunks hold a term). These functions are exposed as
Store methods.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

RADIUS = 1  # neighbours on each side in a window
WINDOWS = f"own+neighbours:{RADIUS}"  # the window recipe, recorded in meta (a change re-windows)
WINDOWS_KEY = "keyword_windows"
# Weight of the neighbours' column in bm25() (the chunk's own text weighs 1). Below 1, a
# chunk with the query's terms ranks above its neighbours, which only see them nearby.
NEIGHBOUR_WEIGHT = 0.5


def windows_table(name: str = "chunk_windows_fts") -> str:
    """The statement that creates a windows table called ``name``."""
    return (
        f"CREATE VIRTUAL TABLE {name} USING fts5("
        "text, context, content='', tokenize='porter unicode61')"
    )


def window_texts(rows: Sequence[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """(chunk id, own text, neighbours' text) for one content's (id, text) rows in order."""
    out = []
    for i, (cid, text) in enumerate(rows):
        around = [*rows[max(0, i - RADIUS) : i], *rows[i + 1 : i + 1 + RADIUS]]
        out.append((cid, text, "\n".join(t for _, t in around)))
    return out


def content_chunks(conn: sqlite3.Connection, sha256: str) -> list[tuple[int, str]]:
    """(chunk id, text) of one content, in order."""
    return conn.execute(
        "SELECT id, text FROM chunks WHERE sha256 = ? ORDER BY ordinal", (sha256,)
    ).fetchall()


def add_windows(
    conn: sqlite3.Connection, rows: Sequence[tuple[int, str]], table: str = "chunk_windows_fts"
) -> None:
    """Index the windows of one content's chunks, ``content_chunks`` (after inserting them)."""
    conn.executemany(
        f"INSERT INTO {table}(rowid, text, context) VALUES (?, ?, ?)", window_texts(rows)
    )


def remove_windows(conn: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
    """Remove the windows of one content's chunks, ``content_chunks`` (before deleting them)."""
    conn.executemany(
        "INSERT INTO chunk_windows_fts(chunk_windows_fts, rowid, text, context) "
        "VALUES ('delete', ?, ?, ?)",
        window_texts(rows),
    )


def _fill(conn: sqlite3.Connection, table: str) -> int:
    """Index every chunk's window into ``table``; returns the windows indexed.

    It reads the chunks themselves, not ``contents``, so chunks whose content row
    is missing (fsck reports them) still get the windows their deletion will remove.
    """
    n = 0
    for (sha,) in conn.execute("SELECT DISTINCT sha256 FROM chunks").fetchall():
        rows = content_chunks(conn, sha)
        add_windows(conn, rows, table)
        n += len(rows)
    return n


def rebuild_windows(conn: sqlite3.Connection) -> int:
    """(Re-)create the windows table from the chunks and record the recipe; returns windows."""
    conn.execute("DROP TABLE IF EXISTS chunk_windows_fts")
    conn.execute(windows_table())
    n = _fill(conn, "chunk_windows_fts")
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (WINDOWS_KEY, WINDOWS))
    return n


def windows_current(conn: sqlite3.Connection) -> bool:
    """True when the windows table is complete and made with this recipe."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (WINDOWS_KEY,)).fetchone()
    return row is not None and row[0] == WINDOWS


def check_windows(conn: sqlite3.Connection) -> list[str]:
    """Problems of the windows table: it must equal one built afresh from the chunks.

    The windows are built again into a temporary table and compared with the live one
    term by term (per column: rows and occurrences, via fts5vocab) and row by row (each
    window's length), which catches a missing, extra or stale window. About 1 s per
    10,000 chunks. Only reads the index, so it runs inside a snapshot; FTS5's own
    integrity-check of the table writes, and check.fsck runs it apart. An index from
    before windows has none to check.
    """
    if not windows_current(conn):
        return []
    table = "SELECT 1 FROM sqlite_master WHERE name = 'chunk_windows_fts'"
    if conn.execute(table).fetchone() is None:
        return ["keyword windows: recorded as built, but their table is missing"]
    conn.execute("DROP TABLE IF EXISTS temp.windows_check")
    conn.execute(windows_table("temp.windows_check"))
    try:
        _fill(conn, "temp.windows_check")
        conn.execute(
            "CREATE VIRTUAL TABLE temp.windows_live_v USING fts5vocab(main, chunk_windows_fts, col)"
        )
        conn.execute(
            "CREATE VIRTUAL TABLE temp.windows_check_v USING fts5vocab(temp, windows_check, col)"
        )
        terms = sum(n for (n,) in conn.execute(
            "SELECT count(*) FROM (SELECT * FROM temp.windows_live_v EXCEPT "
            "SELECT * FROM temp.windows_check_v) UNION ALL SELECT count(*) FROM ("
            "SELECT * FROM temp.windows_check_v EXCEPT SELECT * FROM temp.windows_live_v)"
        ))
        live = dict(conn.execute("SELECT id, sz FROM chunk_windows_fts_docsize").fetchall())
        want = dict(conn.execute("SELECT id, sz FROM temp.windows_check_docsize").fetchall())
    except sqlite3.DatabaseError as exc:  # the FTS5 table itself is inconsistent
        return [f"keyword windows: {exc}"]
    finally:
        for t in ("windows_live_v", "windows_check_v", "windows_check"):
            conn.execute(f"DROP TABLE IF EXISTS temp.{t}")
    problems = []
    missing, extra = want.keys() - live.keys(), live.keys() - want.keys()
    stale = sum(1 for i in want.keys() & live.keys() if want[i] != live[i])
    if missing or extra or stale:
        problems.append(
            f"keyword windows: {len(missing)} missing, {len(extra)} without a chunk, "
            f"{stale} stale"
        )
    if terms:
        problems.append(f"keyword windows: term counts differ from the chunks' for {terms} terms")
    return problems


# ----- searching ---------------------------------------------------------------------------------
def keyword_candidates(
    conn: sqlite3.Connection,
    match: str,
    k: int,
    where: tuple[str, list] | None = None,
) -> list[tuple[int, float]]:
    """(chunk id, BM25) of the ``k`` chunks whose own text (``chunks_fts``) ranks best.

    Search ranks by windows, but finds its keyword candidates here and scores them
    (and their neighbours) with ``keyword_scores``: ranking every matching window
    costs about 30 ms at 100,000 chunks, ranking chunks 13 ms and scoring a few
    hundred windows 5 ms (README: Retrieval quality). ``match`` is an
    FTS5 expression (retrieval.match_expression); ``where`` is a condition on ``files f`` from
    ``filters.Filter.sql``. FTS5's bm25() is negative (lower is better); it is
    returned negated.
    """
    if not match or k <= 0:
        return []
    sql = "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ?"
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
    conn: sqlite3.Connection, match: str, ids: Sequence[int], windows: bool = True
) -> dict[int, float]:
    """BM25 of those chunks of ``ids`` that ``match`` matches (higher is better).

    Of their windows, or with ``windows=False`` of their own text. "+rowid" makes
    SQLite run the MATCH once and filter its rows (about 5 ms for 200 ids at 100,000
    chunks), instead of once per id.
    """
    if not match or not ids:
        return {}
    listed = ",".join(str(int(i)) for i in ids)  # integers, inline: no bound-variable limit
    t = "chunk_windows_fts" if windows else "chunks_fts"
    bm25 = f"bm25({t}, 1.0, {NEIGHBOUR_WEIGHT})" if windows else f"bm25({t})"
    sql = f"SELECT rowid, {bm25} FROM {t} WHERE {t} MATCH ? AND +rowid IN ({listed})"
    try:
        rows = conn.execute(sql, [match]).fetchall()
    except sqlite3.OperationalError:
        return {}
    return {int(r[0]): -float(r[1]) for r in rows}


def term_chunk_counts(conn: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
    """How many chunks hold each of ``terms`` (0 for a term found nowhere).

    Terms are stemmed exactly as FTS5 stems them, by tokenizing them in a
    temporary FTS5 table and reading it through fts5vocab. A term FTS5 splits
    ("CEO's", "home-office") counts as its rarest part.
    """
    if not terms:
        return {}
    parts: dict[str, list[int]] = {t: [] for t in terms}
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms "
        "USING fts5(t, tokenize='porter unicode61')"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms_v "
        "USING fts5vocab(temp, 'query_terms', 'instance')"
    )
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_fts_v "
        "USING fts5vocab(main, 'chunks_fts', 'row')"
    )
    conn.execute("DELETE FROM temp.query_terms")
    conn.executemany(
        "INSERT INTO temp.query_terms(rowid, t) VALUES (?, ?)", list(enumerate(terms, 1))
    )
    for row, stem in conn.execute("SELECT doc, term FROM temp.query_terms_v").fetchall():
        hit = conn.execute("SELECT doc FROM temp.chunks_fts_v WHERE term = ?", (stem,)).fetchone()
        parts[terms[row - 1]].append(int(hit[0]) if hit else 0)
    return {t: min(n) if n else 0 for t, n in parts.items()}


def common_terms(
    conn: sqlite3.Connection, terms: Sequence[str], max_share: float, n: int
) -> set[str]:
    """The ``terms`` that occur in more than ``max_share`` of the ``n`` chunks."""
    if not terms or n == 0 or max_share >= 1:
        return set()
    return {t for t, df in term_chunk_counts(conn, terms).items() if df > max_share * n}
