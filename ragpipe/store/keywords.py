"""Keyword search in the index's FTS5 table ``chunks_fts``, inside a read snapshot.

``chunks_fts`` is an external-content FTS5 table over ``chunks.text`` (porter
stemming), kept by the triggers in schema.py, so it changes in the same
transaction as the chunks. These functions are exposed as Store methods.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any


def keyword_pairs(
    conn: sqlite3.Connection,
    match: str,
    k: int,
    where: tuple[str, list] | None = None,
) -> list[tuple[int, float]]:
    """(chunk id, BM25) of the ``k`` best FTS5 matches of ``match``, best first.

    ``match`` is an FTS5 query expression (see retrieval.keyword_query);
    ``where`` is a condition on ``files f`` from ``Store.filter_sql``.
    FTS5's bm25() is negative (lower is better); it is returned negated.
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


def keyword_scores(conn: sqlite3.Connection, match: str, ids: Sequence[int]) -> dict[int, float]:
    """BM25 (negated, as keyword_pairs) of those chunks of ``ids`` that ``match`` matches.

    Fusion uses it for dense candidates outside the keyword top k: their real
    keyword score instead of a guess. "+rowid" makes SQLite run the MATCH once
    and filter its rows (about 10 ms for 100 ids at 100,000 chunks), instead of
    once per id.
    """
    if not match or not ids:
        return {}
    marks = ",".join("?" * len(ids))
    sql = (
        "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
        f"AND +rowid IN ({marks})"
    )
    try:
        rows = conn.execute(sql, [match, *map(int, ids)]).fetchall()
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
