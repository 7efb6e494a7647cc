"""Thumbs up or down on an answer, with an optional comment, kept as evaluation data.

A rating is stored with a copy of what was rated: the question, the answer, its sources,
the conversation before it, the model and the settings. So it outlives the conversation,
and the ratings export as a workplace question set (eval_workplace.py) that
``ragpipe eval answers --dataset FILE --index NAME`` runs:

* thumbs up on an answer: answerable, its key point the answer itself (it must come again);
* thumbs up on "not found": unanswerable ("not found" must come again);
* thumbs down: answerable, with no key points yet and ``needs_review`` set: someone who
  knows the answer writes its key points (or adds the missing document) first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import appstate
from .conversations import Conversations
from .errors import InvalidArgument
from .prompts import remove_invalid_citations

UP, DOWN = 1, -1


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


class Feedback:
    """Ratings in the app database (appstate.py), one per answer (a new one replaces it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def give(self, owner: str, message: int, rating: int, comment: str = "") -> None:
        """Rate one of the owner's answers (UP or DOWN), with an optional comment."""
        if rating not in (UP, DOWN):
            raise InvalidArgument(f"rating {rating!r}: use 1 (thumbs up) or -1 (thumbs down)")
        with appstate.connect(self.path) as conn:
            row = conn.execute(
                "SELECT m.conversation, m.content, m.question, m.found, m.detail, c.idx "
                "FROM messages m JOIN conversations c ON c.id = m.conversation "
                "WHERE m.id = ? AND c.owner = ? AND m.role = 'assistant' "
                "AND m.found IS NOT NULL", (message, owner)).fetchone()
            if row is None:
                raise InvalidArgument(f"answer {message} is not one of yours: nothing to rate")
            cid, answer, question, found, detail_json, index = row
            detail = json.loads(detail_json)
            # The conversation before the rated answer, without its question (the last turn).
            history = Conversations(self.path).history(owner, cid, before=message)[:-1]
            kept = {"sources": detail.get("sources", []), "history": history,
                    "model": detail.get("model", ""), "settings": detail.get("settings", {}),
                    "scope": detail.get("scope", {}),
                    "abstain_reason": detail.get("abstain_reason", "")}
            conn.execute(
                "INSERT INTO feedback(message, owner, idx, rating, comment, question, answer, "
                "found, detail, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(message) DO UPDATE SET rating = excluded.rating, "
                "comment = excluded.comment, created = excluded.created",
                (message, owner, index, rating, comment.strip(), question, answer, found,
                 json.dumps(kept), time.time()))

    def rating(self, owner: str, message: int) -> tuple[int, str] | None:
        """The owner's (rating, comment) of an answer, or None."""
        with appstate.connect(self.path) as conn:
            row = conn.execute("SELECT rating, comment FROM feedback WHERE message = ? AND "
                               "owner = ?", (message, owner)).fetchone()
        return (row[0], row[1]) if row else None

    def all(self, index: str | None = None) -> list[dict[str, Any]]:
        """Every rating (of one index), oldest first, with what was rated."""
        with appstate.connect(self.path) as conn:
            rows = conn.execute(
                "SELECT id, message, idx, rating, comment, question, answer, found, detail, "
                "created FROM feedback WHERE ? IS NULL OR idx = ? ORDER BY id",
                (index, index)).fetchall()
        keys = ("id", "message", "index", "rating", "comment", "question", "answer", "found",
                "detail", "created")
        out = []
        for r in rows:
            rec = dict(zip(keys, r, strict=True))
            rec["found"] = bool(rec["found"])
            rec["detail"] = json.loads(rec["detail"])
            out.append(rec)
        return out

    def export_jsonl(self, index: str | None = None, ready_only: bool = False) -> str:
        """The ratings as a workplace question set, one JSON object a line.

        ``ready_only`` leaves out the ones that need review (no key points yet).
        """
        records = [workplace_record(r) for r in self.all(index)]
        if ready_only:
            records = [r for r in records if not r["needs_review"]]
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def workplace_record(fb: dict[str, Any]) -> dict[str, Any]:
    """One rating as a workplace question (eval_workplace.load_workplace reads it)."""
    d = fb["detail"]
    answer = " ".join(remove_invalid_citations(fb["answer"], 0).split())
    up, found = fb["rating"] == UP, fb["found"]
    answerable = found or not up  # thumbs down on "not found": an answer was expected
    key_points = [answer] if up and found and answer else []
    sources = sorted({_file_name(s["source"]) for s in d.get("sources", ())}) if found else []
    history = d.get("history", [])
    if not answerable:
        kind = "unanswerable"
    else:
        kind = "follow_up" if history else "feedback"
    return {
        "id": f"fb-{fb['id']}",
        "question": fb["question"],
        "type": kind,
        "answerable": answerable,
        "sources": sources if up else [],
        "key_points": key_points,
        "reference_answer": answer if up and found else "",
        "history": history,
        "needs_review": answerable and not key_points,
        "rating": "up" if up else "down",
        "comment": fb["comment"],
        "answer_given": fb["answer"],
        "model": d.get("model", ""),
        "settings": d.get("settings", {}),
        "index": fb["index"],
    }
