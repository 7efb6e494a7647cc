"""What a summary is: its checked sentences, the passages they rest on, and its JSON shape."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields
from typing import Any

UNSUPPORTED_MARK = "[unsupported]"


def output_key(sha256: str, model: str, prompt_version: str, style: str) -> str:
    """The identity of one document's summary: a change in any part means a new summary."""
    raw = "\0".join((sha256, model, prompt_version, style))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True)
class Passage:
    """The part of a document a summary sentence rests on.

    ``start``/``end`` are offsets into the page text (as a Chunk's are), ``quote`` is
    the supporting text itself.
    """

    ordinal: int  # the chunk's position in the document
    page: int | None
    start: int
    end: int
    quote: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape."""
        return {"ordinal": self.ordinal, "page": self.page, "start": self.start,
                "end": self.end, "quote": self.quote}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Passage:
        """Inverse of ``to_dict``."""
        return cls(int(d["ordinal"]), d.get("page"), int(d["start"]), int(d["end"]),
                   str(d.get("quote", "")))


@dataclass(frozen=True)
class SummarySentence:
    """One sentence of a summary and what the check found for it."""

    text: str
    supported: bool
    score: float  # share of its content words found in its passage(s)
    sources: tuple[Passage, ...] = ()
    problem: str = ""  # why it is not supported, in words

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape."""
        return {"text": self.text, "supported": self.supported, "score": self.score,
                "sources": [p.to_dict() for p in self.sources], "problem": self.problem}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SummarySentence:
        """Inverse of ``to_dict``."""
        return cls(str(d["text"]), bool(d["supported"]), float(d.get("score", 0.0)),
                   tuple(Passage.from_dict(p) for p in d.get("sources", ())),
                   str(d.get("problem", "")))


@dataclass(frozen=True)
class DocumentSummary:
    """A document's summary as the model wrote it, with every sentence checked.

    ``draft`` is the model's text (links removed, repetition cut, reasoning dropped);
    ``text(unsupported)`` is what is shown: unsupported sentences flagged or dropped.
    """

    source: str  # path relative to the folder or index root
    sha256: str  # of the document's content
    model: str
    prompt_version: str
    style: str
    draft: str
    sentences: tuple[SummarySentence, ...]
    key: str = ""
    also_in: tuple[str, ...] = ()  # other paths with the same content
    map_calls: int = 0  # model calls on the document's own text
    reduce_calls: int = 0  # model calls on notes
    prompt_tokens: int = 0  # all calls together
    generated_tokens: int = 0  # visible text pieces streamed, all calls together
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    created: float = 0.0

    @property
    def supported(self) -> int:
        """Sentences the check backs with the document's text."""
        return sum(1 for s in self.sentences if s.supported)

    @property
    def support_share(self) -> float:
        """Share of checked sentences that are supported (1.0 when there are none)."""
        return self.supported / len(self.sentences) if self.sentences else 1.0

    def text(self, unsupported: str = "flag") -> str:
        """The summary to show: unsupported sentences marked (``flag``) or left out (``drop``).

        The draft's line breaks (bullets, paragraphs) are kept.
        """
        out, pos = [], 0
        for s in self.sentences:
            i = self.draft.find(s.text, pos)
            if i < 0:
                continue
            out.append(self.draft[pos:i])
            if s.supported:
                out.append(s.text)
            elif unsupported == "flag":
                out.append(f"{s.text} {UNSUPPORTED_MARK}")
            pos = i + len(s.text)
        out.append(self.draft[pos:])
        lines = [ln.rstrip() for ln in "".join(out).splitlines()]
        if unsupported == "drop":  # a bullet whose only sentence was dropped goes too
            lines = [ln for ln in lines if ln.strip() not in ("-", "*", "\u2022")]
        text = "\n".join(lines).strip()
        return re.sub(r"\n{3,}", "\n\n", text)

    def to_dict(self, unsupported: str = "flag") -> dict[str, Any]:
        """The JSONL record: source, hash, model, prompt version, style, summary, sentences."""
        return {
            "source": self.source, "also_in": list(self.also_in), "sha256": self.sha256,
            "model": self.model, "prompt_version": self.prompt_version, "style": self.style,
            "key": self.key, "summary": self.text(unsupported), "unsupported": unsupported,
            "draft": self.draft, "sentences": [s.to_dict() for s in self.sentences],
            "supported": self.supported, "checked": len(self.sentences),
            "map_calls": self.map_calls, "reduce_calls": self.reduce_calls,
            "prompt_tokens": self.prompt_tokens, "generated_tokens": self.generated_tokens,
            "timings": self.timings, "created": self.created,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DocumentSummary:
        """Inverse of ``to_dict`` (the shown ``summary`` is derived, so not read back)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["sentences"] = tuple(SummarySentence.from_dict(s) for s in d.get("sentences", ()))
        kw["also_in"] = tuple(d.get("also_in", ()))
        kw["timings"] = dict(d.get("timings", {}))
        return cls(**kw)
