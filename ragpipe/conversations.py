"""Saved conversations: questions, answers and their sources, per owner, in SQLite.

An owner is whoever the web app says asks: a random token kept by the browser until
sign-in exists. Every read and change names the owner, so one owner never sees or
changes another's conversations. An answer is stored with what is needed to show it
again exactly (its sources, citations and support) and to learn from it (model,
settings, scope). Deleting a conversation deletes its messages, and with them its
questions from the usage figures; feedback keeps its own copy (feedback.py).

Reading a conversation back takes what its owner may read now (``readable``: a test on
a document's path, Pipeline.can_read): an answer that rests on a document they may no
longer read is shown as withheld, without its text or sources, and left out of the
history a follow-up question sends to the model (``visible``).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from . import appstate
from .datatypes import Answer, Citation, Hit
from .errors import InvalidArgument

TITLE_CHARS = 60
WITHHELD = ("This answer is hidden: it rests on documents you may no longer read "
            "(their permissions changed).")


@dataclass(frozen=True)
class Conversation:
    """One saved conversation (without its messages)."""

    id: str
    index: str
    title: str
    created: float
    updated: float


@dataclass(frozen=True)
class Message:
    """One turn. An assistant turn's ``detail`` holds its sources and how it was made."""

    id: int
    role: str
    content: str
    found: bool | None = None  # assistant turns; None: the question failed (an error line)
    detail: dict[str, Any] = field(default_factory=dict)
    question: str = ""

    @property
    def hits(self) -> tuple[Hit, ...]:
        """The passages shown with the answer, numbered [1].. in order."""
        return tuple(Hit(**{**h, "also_in": tuple(h.get("also_in", ()))})
                     for h in self.detail.get("sources", ()))

    @property
    def citations(self) -> tuple[Citation, ...]:
        """The answer's checked citations, resolved to ``hits``."""
        hits = self.hits
        out = []
        for c in self.detail.get("citations", ()):
            if 1 <= c["n"] <= len(hits):
                span = tuple(c["span"]) if c.get("span") else None
                out.append(Citation(c["n"], hits[c["n"] - 1], c.get("supported"), span,
                                    inferred=bool(c.get("inferred"))))
        return tuple(out)


@dataclass(frozen=True)
class Usage:
    """Questions answered on an index: per day, and those answered "not found"."""

    per_day: tuple[tuple[str, int], ...]  # (YYYY-MM-DD, questions), oldest first
    questions: int
    not_found: int
    not_found_questions: tuple[tuple[str, str], ...]  # (when, question), newest first

    @property
    def not_found_share(self) -> float:
        """Share of the questions answered "not found" (0 when there were none)."""
        return self.not_found / self.questions if self.questions else 0.0


def new_owner() -> str:
    """A random owner token (128 bits): unguessable, so it can sit in a URL."""
    return secrets.token_urlsafe(16)


def valid_owner(token: str | None) -> bool:
    """True for a token ``new_owner`` could have made (anything else gets a new one)."""
    return bool(token) and 16 <= len(token or "") <= 64 and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in token or ""
    )


def title_for(question: str) -> str:
    """A conversation's title from its first question: one line, at most TITLE_CHARS."""
    flat = " ".join(question.split())
    return flat if len(flat) <= TITLE_CHARS else flat[: TITLE_CHARS - 1].rstrip() + "…"


def visible(m: Message, readable: Callable[[str], bool] | None) -> Message:
    """``m`` as someone who may read the paths ``readable`` accepts may see it.

    Each source names only readable files; an answer with a source none of whose files
    is readable is withheld whole (text, sources, citations): its text came from it.
    ``readable`` None shows everything.
    """
    if readable is None or m.role != "assistant" or m.found is None:
        return m
    sources = []
    for h in m.detail.get("sources", ()):
        paths = [p for p in (h["source"], *h.get("also_in", ())) if readable(p)]
        if not paths:
            return replace(m, content=WITHHELD, found=None, detail={"withheld": True})
        sources.append({**h, "source": paths[0], "also_in": paths[1:]})
    return replace(m, detail={**m.detail, "sources": sources})


def answer_detail(answer: Answer, shown: tuple[Hit, ...], **extra: Any) -> dict[str, Any]:
    """What is stored with an answer: the passages shown, citations, support, and ``extra``.

    ``shown`` are the passages listed with it (with "not found", the closest ones);
    ``extra`` holds the model, settings and scope the web app records.
    """
    return {
        "sources": [asdict(h) for h in shown],
        "citations": [
            {"n": c.n, "supported": c.supported, "span": list(c.span) if c.span else None,
             "inferred": c.inferred}
            for c in answer.citations if 1 <= c.n <= len(shown)
        ],
        "abstain_reason": answer.abstain_reason,
        "support": asdict(answer.support),
        "degraded": list(answer.degraded),  # what the answer model's backend could not do
        "query": answer.query,
        **extra,
    }


def settings_record(settings: Any) -> dict[str, Any]:
    """The settings that shape an answer (model, answer, retrieval), stored with it."""
    r = settings.retrieval
    return {"llm": asdict(settings.llm), "answer": asdict(settings.answer),
            "retrieval": {"top_k": r.top_k, "mode": r.mode}, "embedder": settings.embedder.model}


class Conversations:
    """Conversations in the app database (appstate.py); every call names its owner."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _conn(self) -> AbstractContextManager[sqlite3.Connection]:
        return appstate.connect(self.path)

    # ----- conversations -------------------------------------------------------------------
    def create(self, owner: str, index: str, title: str = "New chat") -> str:
        """Start an empty conversation on ``index``; returns its id."""
        cid, now = secrets.token_hex(8), time.time()
        with self._conn() as conn:
            conn.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?)",
                         (cid, owner, index, title, now, now))
        return cid

    def list_for(self, owner: str) -> list[Conversation]:
        """The owner's conversations, most recently used first."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id, idx, title, created, updated FROM conversations WHERE owner = ? "
                "ORDER BY updated DESC, rowid DESC", (owner,)).fetchall()
        return [Conversation(*r) for r in rows]

    def get(self, owner: str, cid: str) -> Conversation | None:
        """One of the owner's conversations, or None (unknown, deleted, or another's)."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT id, idx, title, created, updated FROM conversations "
                "WHERE id = ? AND owner = ?", (cid, owner)).fetchone()
        return Conversation(*row) if row else None

    def rename(self, owner: str, cid: str, title: str) -> None:
        """Give a conversation a new title (one line; a blank title is refused)."""
        title = " ".join(title.split())
        if not title:
            raise InvalidArgument("the title is empty: type a name for the conversation")
        with self._conn() as conn:
            conn.execute("UPDATE conversations SET title = ? WHERE id = ? AND owner = ?",
                         (title[:200], cid, owner))

    def delete(self, owner: str, cid: str) -> None:
        """Delete a conversation and its messages."""
        with self._conn() as conn:
            conn.execute("DELETE FROM conversations WHERE id = ? AND owner = ?", (cid, owner))

    # ----- messages ------------------------------------------------------------------------
    def _add(self, owner: str, cid: str, row: tuple, first_question: str = "") -> int:
        now = time.time()
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            if not conn.execute("SELECT 1 FROM conversations WHERE id = ? AND owner = ?",
                                (cid, owner)).fetchone():
                conn.execute("ROLLBACK")
                raise InvalidArgument(f"conversation {cid!r} does not exist: start a new chat")
            cur = conn.execute(
                "INSERT INTO messages(conversation, role, content, question, found, detail, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?)", (cid, *row, now))
            conn.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, cid))
            if first_question:  # a new chat is named after its first question
                conn.execute("UPDATE conversations SET title = ? WHERE id = ? AND NOT EXISTS "
                             "(SELECT 1 FROM messages WHERE conversation = ? AND role = 'user' "
                             "AND id != ?)", (title_for(first_question), cid, cid,
                                              cur.lastrowid))
            conn.execute("COMMIT")
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_question(self, owner: str, cid: str, question: str) -> int:
        """Record the user's question; the first one names the conversation."""
        return self._add(owner, cid, ("user", question, "", None, "{}"), question)

    def add_answer(
        self, owner: str, cid: str, answer: Answer, shown: tuple[Hit, ...], **extra: Any
    ) -> int:
        """Record an answer with its sources (``answer_detail``)."""
        detail = json.dumps(answer_detail(answer, shown, **extra))
        return self._add(owner, cid, ("assistant", answer.text, answer.question,
                                      int(answer.found), detail))

    def add_error(self, owner: str, cid: str, question: str, message: str) -> int:
        """Record a question that failed, with its one-line reason (left out of history)."""
        return self._add(owner, cid, ("assistant", message, question, None, "{}"))

    def messages(self, owner: str, cid: str,
                 readable: Callable[[str], bool] | None = None) -> list[Message]:
        """The conversation's turns, oldest first ([] for another owner's).

        With ``readable``, each answer as ``visible`` shows it.
        """
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT m.id, m.role, m.content, m.found, m.detail, m.question FROM messages m "
                "JOIN conversations c ON c.id = m.conversation WHERE c.id = ? AND c.owner = ? "
                "ORDER BY m.id", (cid, owner)).fetchall()
        return [visible(Message(i, role, content, None if found is None else bool(found),
                                json.loads(detail), question), readable)
                for i, role, content, found, detail, question in rows]

    def history(self, owner: str, cid: str, before: int | None = None,
                readable: Callable[[str], bool] | None = None) -> list[dict[str, str]]:
        """The chat so far as ``{"role", "content"}`` dicts for a follow-up question.

        Only turns older than message ``before`` when given. Failed questions and their
        error lines are left out: they are not conversation; so are answers ``readable``
        withholds, with their questions.
        """
        turns = [m for m in self.messages(owner, cid, readable)
                 if before is None or m.id < before]
        out: list[dict[str, str]] = []
        for i, m in enumerate(turns):
            nxt = turns[i + 1] if i + 1 < len(turns) else None
            if m.role == "assistant" and m.found is None:
                continue
            if m.role == "user" and nxt is not None and nxt.role == "assistant" and (
                nxt.found is None
            ):
                continue
            out.append({"role": m.role, "content": m.content})
        return out

    def markdown(self, owner: str, cid: str,
                 readable: Callable[[str], bool] | None = None) -> str:
        """The conversation as Markdown, each answer followed by its sources (``visible``)."""
        conv = self.get(owner, cid)
        if conv is None:
            return ""
        lines = [f"# {conv.title}", "",
                 f"Index: {conv.index} · {datetime.fromtimestamp(conv.created):%Y-%m-%d %H:%M}",
                 ""]
        for m in self.messages(owner, cid, readable):
            if m.role == "user":
                lines += [f"**Question:** {m.content}", ""]
                continue
            lines += [f"**Answer:** {m.content}", ""]
            for n, hit in enumerate(m.hits, start=1):
                lines.append(f"- [{n}] {hit.location}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    # ----- usage ---------------------------------------------------------------------------
    def usage(self, index: str, since: date | None = None, limit: int = 200) -> Usage:
        """Questions answered on ``index`` (from ``since``), and those answered "not found".

        Counted from the saved conversations of every owner; failed questions are not
        counted. Nothing of it leaves the machine.
        """
        start = datetime(since.year, since.month, since.day).timestamp() if since else 0.0
        with self._conn() as conn:
            where = ("FROM messages m JOIN conversations c ON c.id = m.conversation "
                     "WHERE c.idx = ? AND m.role = 'assistant' AND m.found IS NOT NULL "
                     "AND m.created >= ?")
            per_day = conn.execute(
                f"SELECT date(m.created, 'unixepoch', 'localtime') AS day, count(*) {where} "
                "GROUP BY day ORDER BY day", (index, start)).fetchall()
            total, missed = conn.execute(
                f"SELECT count(*), coalesce(sum(1 - m.found), 0) {where}",
                (index, start)).fetchone()
            rows = conn.execute(
                f"SELECT datetime(m.created, 'unixepoch', 'localtime'), m.question {where} "
                "AND m.found = 0 ORDER BY m.id DESC LIMIT ?", (index, start, limit)).fetchall()
        return Usage(tuple((d, n) for d, n in per_day), total, missed,
                     tuple((w, q) for w, q in rows))
