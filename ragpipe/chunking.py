"""Document -> Chunks, sized in tokens of the embedder's own tokenizer.

A recursive splitter in the manner of langchain's RecursiveCharacterTextSplitter
(paragraphs, then lines, sentences, clauses, words, characters), but working on
character spans instead of strings. Why not langchain itself: it returns bare
strings, and recovering their offsets by searching the page is ambiguous when
text repeats (tables, boilerplate), which silently breaks the guarantee that
``page.text[start:end] == chunk.text``. Working on spans makes offsets exact by
construction, and every merged chunk is measured with the real tokenizer, so no
chunk exceeds ``limit`` tokens and nothing is truncated at embedding time.

Chunks are bounded in characters too (``CHARS_PER_TOKEN`` per token of ``size``):
a tokenizer maps a long run it does not know (a base64 blob, a line of one repeated
character) to a single unknown token, so a token bound alone would let one chunk
hold a whole megabyte that the embedder sees as one token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .datatypes import Chunk, Document

TokenCounter = Callable[[str], int]

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
_SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", "")
# Character bound of a chunk per token of its target size. Ordinary text runs at four
# to five characters per token, so only text the tokenizer cannot split meets it.
CHARS_PER_TOKEN = 8


def heading_paths(text: str) -> list[tuple[int, str]]:
    """(offset, "H1 > H2 > H3") for each Markdown heading in ``text``, in order."""
    stack: list[tuple[int, str]] = []
    out: list[tuple[int, str]] = []
    for m in _HEADING.finditer(text):
        level = len(m.group(1))
        stack = [(lv, t) for lv, t in stack if lv < level]
        stack.append((level, m.group(2).strip()))
        out.append((m.start(), " > ".join(t for _, t in stack)))
    return out


class Chunker:
    """Split documents into overlapping chunks of at most ``limit`` tokens.

    ``size`` and ``overlap`` are targets in tokens; ``limit`` is the hard
    ceiling (the embedder's window minus its special tokens). No chunk is longer
    than ``max_chars`` characters (``size * CHARS_PER_TOKEN``), nor an overlap
    longer than ``overlap * CHARS_PER_TOKEN``.
    """

    def __init__(self, count_tokens: TokenCounter, size: int, overlap: int, limit: int) -> None:
        self.count = count_tokens
        self.limit = limit
        self.size = min(size, limit)
        self.overlap = min(overlap, self.size // 2)
        self.max_chars = self.size * CHARS_PER_TOKEN
        self.overlap_chars = self.overlap * CHARS_PER_TOKEN

    def _fits(self, text: str, start: int, end: int) -> bool:
        """True when text[start:end] is within both bounds (characters checked first: cheap)."""
        return end - start <= self.max_chars and self.count(text[start:end]) <= self.size

    def _atoms(self, text: str, start: int, end: int, seps: Sequence[str]) -> list[tuple[int, int]]:
        """Cut [start, end) at the coarsest separator until every piece is within ``size``."""
        if end - start <= 0:
            return []
        if self._fits(text, start, end):
            return [(start, end)]
        for i, sep in enumerate(seps):
            if sep == "":
                break
            if text.find(sep, start, end) < 0:
                continue
            out: list[tuple[int, int]] = []
            pos = start
            while pos < end:
                j = text.find(sep, pos, end)
                cut = end if j < 0 else j + len(sep)  # the separator stays with its piece
                out.extend(self._atoms(text, pos, cut, seps[i + 1 :]))
                pos = cut
            return out
        return self._char_atoms(text, start, end)

    def _char_atoms(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Last resort for a run with no separator: the longest prefixes within both bounds."""
        out = []
        while start < end:
            lo, hi = start + 1, min(end, start + self.max_chars)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.count(text[start:mid]) <= self.size:
                    lo = mid
                else:
                    hi = mid - 1
            out.append((start, lo))
            start = lo
        return out

    def split_text(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character spans of the chunks of ``text``, whitespace trimmed."""
        atoms = self._atoms(text, 0, len(text), _SEPARATORS)
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(atoms):
            j = i + 1  # atoms[i:j] form the chunk; grow while it fits
            while j < len(atoms) and self._fits(text, atoms[i][0], atoms[j][1]):
                j += 1
            s, e = _strip_span(text, atoms[i][0], atoms[j - 1][1])
            if s < e:
                spans.append((s, e))
            if j >= len(atoms):
                break
            # Start the next chunk with trailing atoms of this one, up to ``overlap`` tokens.
            k = j
            while (
                k - 1 > i
                and atoms[j - 1][1] - atoms[k - 1][0] <= self.overlap_chars
                and self.count(text[atoms[k - 1][0] : atoms[j - 1][1]]) <= self.overlap
            ):
                k -= 1
            i = k
        return spans

    def split(self, doc: Document) -> list[Chunk]:
        """All chunks of a document, pages in order, numbered from 0."""
        chunks: list[Chunk] = []
        for page in doc.pages:
            headings = heading_paths(page.text) if doc.kind == "md" else []
            for start, end in self.split_text(page.text):
                heading = ""
                for off, path in headings:
                    if off > start:
                        break
                    heading = path
                chunks.append(
                    Chunk(page.text[start:end], page.number, start, end, len(chunks), heading)
                )
        return chunks


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def chunk_settings_key(size: int, overlap: int, window: int | str) -> str:
    """A string that changes whenever the chunking settings change (stored per document).

    The embedder is deliberately not part of it: a new embedder re-embeds the stored chunk
    text (re-reading only files with a chunk over the new model's window).
    """
    return f"v3:size={size}:overlap={overlap}:window={window}"  # v3: the character bound


def texts_for_embedding(chunks: Sequence[Chunk]) -> list[str]:
    """The text embedded for each chunk: the chunk itself (exactly what was token-limited)."""
    return [c.text for c in chunks]
