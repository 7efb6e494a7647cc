"""The audit log: one row per question asked through the web app, for admins.

A row says who asked, when, on which index, which documents were retrieved (their paths
and chunk ids), which answer it became (the message id in the saved conversation) and
which model gave it, and whether it was answered. It holds no question text, no answer
text and no prompt: the log answers "who saw which documents when", and is safe to hand
to an auditor who may not read the documents. Questions that failed or were refused
(busy, too long) get a row with their reason's first words, also without the question.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from . import appstate
from .datatypes import Hit


class Audit:
    """The audit rows of one app database."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _conn(self) -> AbstractContextManager[sqlite3.Connection]:
        return appstate.connect(self.path)

    def record(self, user: str, index: str, hits: Sequence[Hit], answer_id: int | None,
               model: str, outcome: str) -> None:
        """Log one question: ``outcome`` is answered, not_found, stopped or failed."""
        docs = sorted({h.source for h in hits})
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO audit(at, user, idx, documents, chunks, answer, model, outcome) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (time.time(), user, index, json.dumps(docs),
                 json.dumps([h.chunk_id for h in hits]), answer_id, model, outcome))

    def rows(self, since: float | None = None, user: str | None = None,
             index: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows, newest first, optionally since a time, of one user or one index."""
        sql = ("SELECT id, at, user, idx, documents, chunks, answer, model, outcome FROM audit "
               "WHERE at >= ?")
        args: list[Any] = [since or 0.0]
        if user is not None:
            sql += " AND user = ?"
            args.append(user)
        if index is not None:
            sql += " AND idx = ?"
            args.append(index)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._conn() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [{"id": i, "at": at, "user": u, "index": x, "documents": json.loads(d),
                 "chunks": json.loads(c), "answer": a, "model": m, "outcome": o}
                for i, at, u, x, d, c, a, m, o in rows]

    def export_jsonl(self, **filters: Any) -> str:
        """The rows as JSON Lines, oldest first."""
        return "".join(json.dumps(r) + "\n" for r in reversed(self.rows(**filters)))


def for_indexes(indexes: Path) -> Audit:
    """The audit log of the server whose indexes live in ``indexes``."""
    return Audit(appstate.db_path(indexes))
