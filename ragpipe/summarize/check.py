"""Checking a summary against its document, sentence by sentence.

A summary sentence restates one or two sentences of its document, so it is checked
against windows of one or two consecutive document sentences, not against whole
chunks: in a chunk, "Account lockout - contact the IT Operations team" finds all its
words (a heading, a footer, a line about something else) although the document never
says it. A sentence is supported when a window holds the answer path's share of its
content words (grounding.SUPPORT_THRESHOLD, light stemming) and every number it states
verbatim (grounding.support_span). One more rule for summaries: a capitalized word
after the first (a name, a tool, a role) must occur somewhere in the document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..datatypes import Chunk
from ..grounding import (
    STOPWORDS,
    SUPPORT_THRESHOLD,
    content_words,
    split_sentences,
    support_span,
)
from .records import Passage, SummarySentence

_LETTERS = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?")
_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")
_CANDIDATES = 8  # best windows by word share whose numbers are checked


def claim_of(sentence: str) -> str:
    """The sentence without a leading bullet or list number."""
    return _MARKER.sub("", sentence).strip()


def names_in(claim: str) -> list[str]:
    """Capitalized words after the first one: names, tools, roles ("BuyRight", "CFO")."""
    words = _LETTERS.findall(claim)
    return [w for w in words[1:] if w[:1].isupper() and w.lower() not in STOPWORDS]


def _units(text: str) -> list[tuple[int, int]]:
    """Sentences of ``text``, where a line without a full stop joins the next.

    So a list and the line that introduces it, or a table's rows, are read together (up
    to ``_UNIT_CHARS``), as a summary sentence condenses them.
    """
    out: list[tuple[int, int]] = []
    for a, b in split_sentences(text):
        if out and text[out[-1][0] : out[-1][1]].rstrip()[-1:] not in ".!?" and (
                b - out[-1][0] <= _UNIT_CHARS):
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


_UNIT_CHARS = 400


@dataclass(frozen=True)
class _Sentence:
    chunk: Chunk
    start: int  # offsets in the chunk's text
    end: int
    words: frozenset[str]


class DocumentText:
    """A document's sentences in order (from its chunks), for checking claims against."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.sentences = [
            _Sentence(c, a, b, frozenset(content_words(c.text[a:b])))
            for c in chunks for a, b in _units(c.text)
        ]
        self.words = frozenset(w.lower() for c in chunks for w in _LETTERS.findall(c.text))
        self.text = "\n".join(c.text for c in chunks)
        s = self.sentences
        # (i, j, content words) of every window of one or two consecutive sentences
        self.windows = [(i, i + 1, s[i].words) for i in range(len(s))] + [
            (i, i + 2, s[i].words | s[i + 1].words) for i in range(len(s) - 1)]

    def window_text(self, i: int, j: int) -> str:
        """The text of sentences i..j-1."""
        return "\n".join(s.chunk.text[s.start : s.end] for s in self.sentences[i:j])

    def passages(self, i: int, j: int) -> tuple[Passage, ...]:
        """The window as passages: one per chunk it spans, offsets into the page text."""
        out: list[Passage] = []
        for s in self.sentences[i:j]:
            c = s.chunk
            quote = c.text[s.start : s.end].strip()
            if out and out[-1].ordinal == c.ordinal and out[-1].page == c.page:
                last = out[-1]
                out[-1] = Passage(last.ordinal, last.page, last.start, c.start + s.end,
                                  c.text[last.start - c.start : s.end].strip())
            else:
                out.append(Passage(c.ordinal, c.page, c.start + s.start, c.start + s.end, quote))
        return tuple(out)


def check_sentence(claim: str, doc: DocumentText,
                   threshold: float = SUPPORT_THRESHOLD) -> SummarySentence:
    """Find the window of the document that supports ``claim``; say why when none does."""
    words = set(content_words(claim))
    scored = sorted(
        ((len(words & have) / len(words) if words else 0.0, i, j) for i, j, have in doc.windows),
        key=lambda x: (-x[0], x[2] - x[1], x[1]),  # best share, then one sentence, then first
    )[:_CANDIDATES]
    best = scored[0] if scored else (0.0, 0, 0)
    found = None
    for score, i, j in scored:
        if score < threshold:
            break
        if support_span(claim, doc.window_text(i, j)).numbers_ok:
            found = (score, i, j)
            break
    unknown = [n for n in names_in(claim) if n.lower() not in doc.words]
    if unknown:
        problem = "names not in the document: " + ", ".join(dict.fromkeys(unknown))
    elif found is None and not support_span(claim, doc.text).numbers_ok:
        problem = "states a number that is not in the document"
    elif found is None and best[0] >= threshold:
        problem = "states a number that is not where its words are in the document"
    elif found is None:
        problem = (f"at most {best[0]:.0%} of its words are in one or two sentences of the "
                   "document")
    else:
        problem = ""
    score, i, j = found or best
    sources = doc.passages(i, j) if score > 0 else ()
    return SummarySentence(claim, not problem, round(score, 3), sources, problem)


def check_summary(draft: str, chunks: Sequence[Chunk]) -> tuple[SummarySentence, ...]:
    """Every sentence (or bullet) of ``draft`` that makes a claim, checked against ``chunks``.

    ``SummarySentence.text`` is the sentence as it stands in the draft, bullet removed.
    """
    if not chunks:
        return ()
    doc = DocumentText(chunks)
    out = []
    for a, b in split_sentences(draft):
        claim = claim_of(draft[a:b])
        if not content_words(claim) and not re.search(r"\d", claim):
            continue  # nothing to check: a bare bullet, "Yes."
        if claim.endswith(":") and not re.search(r"\d", claim):
            continue  # a lead-in ("Key facts:"), not a claim
        out.append(check_sentence(claim, doc))
    return tuple(out)
