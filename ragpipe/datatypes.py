"""The typed values that flow between ragpipe's stages.

Only these cross module boundaries (plus numpy arrays for vectors). Standard
library only, so every module can import them without cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """What happened when one file was read; stored with the index for every file."""

    OK = "ok"
    OK_PARTIAL = "ok_partial"  # some pages had no text
    EMPTY_TEXT = "empty_text"
    NEEDS_OCR = "needs_ocr"
    ENCRYPTED = "encrypted"
    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"
    PARSE_ERROR = "parse_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    SKIPPED_SYMLINK = "skipped_symlink"
    UNREADABLE = "unreadable"
    VANISHED = "vanished"

    @property
    def has_text(self) -> bool:
        """True when the file produced text that can be chunked."""
        return self in (Outcome.OK, Outcome.OK_PARTIAL)


@dataclass(frozen=True)
class Page:
    """Text of one page (PDF page, slide, sheet) or of a whole file (number None)."""

    number: int | None
    text: str


@dataclass(frozen=True)
class Document:
    """A file's extracted text. ``path`` is relative to the ingested root, with '/' separators."""

    path: str
    pages: tuple[Page, ...]
    kind: str  # "pdf", "md", "txt", "html", ...
    sha256: str = ""
    notes: tuple[str, ...] = ()  # non-fatal remarks, e.g. "page 3 has no text layer"


@dataclass(frozen=True)
class Chunk:
    """A span of a page's text, small enough for the embedder's window.

    ``start``/``end`` are character offsets into the page text, so
    ``page_text[start:end] == text`` always holds.
    """

    text: str
    page: int | None
    start: int
    end: int
    ordinal: int  # position of the chunk within its document
    heading: str = ""  # heading path for Markdown, e.g. "Travel > Hotels"


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with its score and the file(s) it came from."""

    chunk_id: int
    text: str
    source: str  # path relative to the index's root
    page: int | None
    start: int
    end: int
    score: float
    heading: str = ""
    also_in: tuple[str, ...] = ()  # other paths with byte-identical content

    @property
    def location(self) -> str:
        """'file' or 'file, page N' for display."""
        return self.source if self.page is None else f"{self.source}, page {self.page}"


@dataclass(frozen=True)
class Citation:
    """An inline [n] marker of an answer, resolved to the passage it names and checked.

    ``span`` is the supporting text as character offsets into the page text of
    ``hit.source`` / ``hit.page`` (the same coordinates as ``hit.start``/``hit.end``), so
    a UI can highlight it.
    """

    n: int
    hit: Hit
    supported: bool | None = None  # None: not checked
    span: tuple[int, int] | None = None  # supporting text, offsets into the page text
    score: float = 0.0  # share of the sentence's content words found in the passage
    sentence: str = ""  # the answer sentence that cites the passage (markers removed)
    inferred: bool = False  # the model did not cite; ragpipe found the supporting passage

    @property
    def source(self) -> str:
        """The cited file, relative to the index's root."""
        return self.hit.source

    @property
    def page(self) -> int | None:
        """The cited page (None for files without pages)."""
        return self.hit.page


@dataclass(frozen=True)
class Support:
    """How an answer's claims are backed by its passages (a summary of its citations)."""

    citations: int = 0
    supported: int = 0
    unsupported: int = 0
    uncited_sentences: int = 0  # sentences with a claim that no passage supports
    confidence: float | None = None  # calibrated P(the answer is grounded); None: not checked

    @property
    def verdict(self) -> str:
        """'supported', 'partly supported', 'unsupported' or 'not checked'."""
        if self.confidence is None and not self.citations:
            return "not checked"
        if self.citations and not self.unsupported and not self.uncited_sentences:
            return "supported"
        if self.supported:
            return "partly supported"
        return "unsupported"


@dataclass(frozen=True)
class Answer:
    """A finished answer: its text, the passages it was given, and what it cites."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]  # passages placed in the prompt, numbered [1].. in order
    dropped: tuple[Hit, ...] = ()  # retrieved but left out to fit the context window
    prompt_tokens: int = 0
    answer_tokens: int = 0  # visible tokens (reasoning in <think> blocks not counted)
    found: bool = True  # False when ragpipe answered "not found in the documents"
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    support: Support = field(default_factory=Support)
    # Why ragpipe said "not found": "" (it answered), "no passages", "not relevant" (no
    # passage covers the question), "unsupported" (no passage backs the draft), "uncertain"
    # (calibrated confidence below answer.min_confidence), "model" (the model said so).
    abstain_reason: str = ""
    withheld: str = ""  # the model's draft when it was replaced by "not found"
    query: str = ""  # what was searched: the question, or a follow-up made standalone
    token_parts: dict[str, int] = field(default_factory=dict, compare=False)
    think_tokens: int = 0  # reasoning tokens generated and removed
    signals: dict[str, float] = field(default_factory=dict, compare=False)
    # Retrieved but not given to the model (answer.passages < retrieval.top_k): with a
    # not-found answer, these and ``hits`` are the closest passages to read.
    also_retrieved: tuple[Hit, ...] = ()
    # What the answer model's backend could not do for this answer (e.g. no judge, so no
    # calibrated abstention): pipeline/answer.py DEGRADED, shown by `ask --explain` and the UI.
    degraded: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileReport:
    """The outcome of reading one file, as stored with the index."""

    path: str
    outcome: Outcome
    message: str = ""
    pages: int = 0
    chunks: int = 0
    kind: str = ""


@dataclass(frozen=True)
class SyncStats:
    """What one ingest or sync did, per category of file."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()  # (old path, new path)
    unchanged: int = 0
    failed: tuple[FileReport, ...] = ()
    chunks_added: int = 0
    chunks_removed: int = 0
    generation: int = 0
    dry_run: bool = False
    refused: tuple[str, ...] = ()  # dry run: why the real sync would stop before writing
    files_read: int = 0  # files whose content was read, shared or failed (not unchanged)
    seconds: float = 0.0  # wall-clock time of applying the plan

    @property
    def wrote(self) -> bool:
        """True when the index on disk changed."""
        return bool(self.added or self.changed or self.deleted or self.renamed) and not self.dry_run
