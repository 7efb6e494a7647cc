"""The roll-up: an overview of a set of documents (or of each top-level folder), citing them.

Each document enters with the first few supported sentences of its summary, numbered
[1], [2], ...; as many documents as fit the budget go into one prompt, and a set too
large for one prompt gets one overview per consecutive part. The overview's sentences
are checked, with the answer path's check_answer, against the summaries they cite.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..datatypes import Citation, Hit
from ..grounding import check_answer
from ..safety import neutralize_links
from .mapreduce import Usage, fit_groups, generate
from .records import DocumentSummary
from .templates import PROMPT_VERSION, ROLLUP, rollup_messages

LEAD_SENTENCES = 3  # of each document's summary, in the roll-up prompt


@dataclass(frozen=True)
class RollupPart:
    """One overview and the documents it was written from ([1] is ``sources[0]``)."""

    title: str  # "" (the whole set), a folder, or either with "part N"
    sources: tuple[str, ...]
    text: str
    citations: tuple[dict[str, Any], ...] = ()  # n, source, supported, sentence
    uncited: int = 0  # sentences that cite no document and none supports

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape."""
        return {"title": self.title, "sources": list(self.sources), "text": self.text,
                "citations": list(self.citations), "uncited": self.uncited}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RollupPart:
        """Inverse of ``to_dict``."""
        return cls(d["title"], tuple(d["sources"]), d["text"],
                   tuple(d.get("citations", ())), int(d.get("uncited", 0)))


def lead(summary: DocumentSummary) -> str:
    """The first supported sentences of a summary: what the roll-up reads of it.

    Sentences of six words or more come first: short ones are mostly headings.
    """
    ok = [s.text for s in summary.sentences if s.supported]
    full = [t for t in ok if len(t.split()) >= 6]
    return " ".join((full or ok)[:LEAD_SENTENCES])


def scopes(summaries: Sequence[DocumentSummary], by_folder: bool) -> list[tuple[str, list]]:
    """(title, summaries) of each roll-up: the whole set, or each top-level folder."""
    items = sorted((s for s in summaries if lead(s)), key=lambda s: s.source)
    if not by_folder:
        return [("", items)] if items else []
    groups: dict[str, list[DocumentSummary]] = {}
    for s in items:
        top = s.source.split("/", 1)[0] + "/" if "/" in s.source else "(top level)"
        groups.setdefault(top, []).append(s)
    return sorted(groups.items())


def rollup_key(model: str, parts: Sequence[tuple[str, list]]) -> str:
    """Identifies a roll-up by its model, template and inputs: equal keys, equal roll-ups."""
    raw = json.dumps([model, PROMPT_VERSION, [(t, [(s.source, s.key) for s in items])
                                              for t, items in parts]])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]


def rollup(gen: Any, parts: Sequence[tuple[str, list]], max_tokens: int) -> list[RollupPart]:
    """Write the overview of each scope, in parts that fit the model's budget."""
    budget = gen.n_ctx - max_tokens
    usage = Usage()
    out = []
    for title, items in parts:
        entries = [(s.source, lead(s)) for s in items]

        def count(k: int, i: int, j: int, entries: list = entries) -> int:
            return gen.count_prompt_tokens(rollup_messages(entries[i:j]))

        ranges = fit_groups(len(entries), count, budget, [len(t) for _, t in entries])
        for n, (i, j) in enumerate(ranges, start=1):
            part = entries[i:j]
            text = generate(gen, rollup_messages(part), max_tokens, usage,
                            ROLLUP.format(n=len(part)))
            # A numbered list's "1." would be checked as a sentence of its own.
            text = re.sub(r"(?m)^(\s*)\d{1,2}\.\s+", r"\1- ", text)
            hits = [Hit(k, t, p, None, 0, len(t), 0.0) for k, (p, t) in enumerate(part, 1)]
            checked = check_answer(neutralize_links(text, [t for _, t in part]), hits)
            name = title if len(ranges) == 1 else f"{title} part {n}".strip()
            cites = tuple(
                {"n": c.n, "source": c.hit.source, "supported": bool(c.supported),
                 "sentence": c.sentence, "inferred": c.inferred}
                for c in checked.citations
            )
            out.append(RollupPart(name, tuple(p for p, _ in part),
                                  _cite_inferred(checked.text, checked.citations), cites,
                                  checked.support.uncited_sentences))
    return out


def _cite_inferred(text: str, citations: Sequence[Citation]) -> str:
    """``text`` with a marker after each sentence the check found in a summary uncited.

    So every supported sentence of the overview names its document.
    """
    pos = 0
    for c in citations:
        i = text.find(c.sentence, pos) if c.inferred else -1
        if i >= 0:
            end = i + len(c.sentence)
            text = f"{text[:end]} [{c.n}]{text[end:]}"
            pos = end
    return text
