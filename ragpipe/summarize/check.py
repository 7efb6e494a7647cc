"""Checking a summary against its document, sentence by sentence.

A sentence is supported when the answer path's check (grounding.support_span: the share
of its content words, every number verbatim) backs it with one of the document's
chunks, or with two chunks together (a summary sentence often joins two neighbouring
statements). One more rule for summaries: a capitalized word inside the sentence (a
name, a tool, a role) must occur somewhere in the document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..datatypes import Chunk
from ..grounding import (
    STOPWORDS,
    SUPPORT_THRESHOLD,
    SpanMatch,
    content_words,
    split_sentences,
    support_span,
)
from .records import Passage, SummarySentence

_LETTERS = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?")
_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")


def claim_of(sentence: str) -> str:
    """The sentence without a leading bullet or list number."""
    return _MARKER.sub("", sentence).strip()


def names_in(claim: str) -> list[str]:
    """Capitalized words after the first one: names, tools, roles ("BuyRight", "CFO")."""
    words = _LETTERS.findall(claim)
    return [w for w in words[1:] if w[:1].isupper() and w.lower() not in STOPWORDS]


def document_words(chunks: Sequence[Chunk]) -> frozenset[str]:
    """Every word of the document, lower case (for the names rule)."""
    return frozenset(w.lower() for c in chunks for w in _LETTERS.findall(c.text))


def _passage(chunk: Chunk, sm: SpanMatch) -> Passage:
    a, b = (sm.start, sm.end) if sm.end > sm.start else (0, len(chunk.text))
    return Passage(chunk.ordinal, chunk.page, chunk.start + a, chunk.start + b,
                   chunk.text[a:b].strip())


def check_sentence(
    claim: str, chunks: Sequence[Chunk], words: frozenset[str], text: str,
    threshold: float = SUPPORT_THRESHOLD,
) -> SummarySentence:
    """Find the chunk (or two) that support ``claim``; say why when none does.

    ``words`` and ``text`` are the whole document's (document_words, the chunks joined).
    """
    scored = sorted(
        ((support_span(claim, c.text), i) for i, c in enumerate(chunks)),
        key=lambda x: (-x[0].score, not x[0].exact, x[1]),
    )
    best, i = scored[0]
    used = [(chunks[i], best)]
    score = best.score
    if score < threshold and len(scored) > 1:
        second, j = scored[1]
        pair = sorted((i, j))
        both = support_span(claim, "\n".join(chunks[k].text for k in pair))
        if both.score >= threshold:
            score = both.score
            used = [(chunks[k], support_span(claim, chunks[k].text)) for k in pair]
    unknown = [n for n in names_in(claim) if n.lower() not in words]
    problem = ""
    if unknown:
        problem = "names not in the document: " + ", ".join(dict.fromkeys(unknown))
    elif score < threshold:
        problem = ("states a number that is not in the document"
                   if not support_span(claim, text).numbers_ok else
                   f"only {best.score:.0%} of its words are in one passage")
    supported = not problem
    sources = tuple(_passage(c, sm) for c, sm in used) if supported else (
        (_passage(chunks[i], best),) if best.score > 0 else ())
    return SummarySentence(claim, supported, round(score, 3), sources, problem)


def check_summary(draft: str, chunks: Sequence[Chunk]) -> tuple[SummarySentence, ...]:
    """Every sentence (or bullet) of ``draft`` that makes a claim, checked against ``chunks``.

    ``SummarySentence.text`` is the sentence as it stands in the draft, bullet removed.
    """
    if not chunks:
        return ()
    words = document_words(chunks)
    text = "\n".join(c.text for c in chunks)
    out = []
    for a, b in split_sentences(draft):
        claim = claim_of(draft[a:b])
        if not content_words(claim) and not re.search(r"\d", claim):
            continue  # nothing to check: a bare bullet, "Yes."
        if claim.endswith(":") and not re.search(r"\d", claim):
            continue  # a lead-in ("Key facts:"), not a claim
        out.append(check_sentence(claim, chunks, words, text))
    return tuple(out)
