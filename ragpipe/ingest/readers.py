"""Format readers: bytes on disk -> Document (text per page).

Every reader either returns a Document or raises ReadError with an Outcome
value naming what went wrong. Deciding ok / ok_partial / empty_text happens in
``read_document`` so that no reader can report "success with no text".
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from ..datatypes import Document, Outcome, Page
from ..errors import ReadError

READER_VERSION = 1  # bump when extraction output changes, so sync re-reads files

_TEXT_KINDS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md"}
_HTML_KINDS = {".html": "html", ".htm": "html", ".xhtml": "html"}


def decode_text(data: bytes) -> str:
    """Decode text bytes: BOM first, then strict UTF-8, then a detected legacy encoding.

    Raises ReadError(parse_error) rather than dropping characters.
    """
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(enc)
            except UnicodeDecodeError as exc:
                raise ReadError(Outcome.PARSE_ERROR, f"invalid {enc} after its BOM: {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ReadError(Outcome.PARSE_ERROR, "cannot determine the text encoding")
    try:
        return data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ReadError(Outcome.PARSE_ERROR, f"cannot decode as {best.encoding}: {exc}") from None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Normalize line ends and remove control characters (NUL etc.) that break tokenizers."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(" ", text)


def read_text(data: bytes) -> list[Page]:
    """Plain text and Markdown: the whole file is one page."""
    return [Page(None, clean_text(decode_text(data)))]


def read_html(data: bytes) -> list[Page]:
    """Visible text of an HTML page: no scripts, styles, templates or hidden elements."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "lxml")
    for tag in soup(["script", "style", "noscript", "template", "head", "svg", "iframe"]):
        tag.decompose()
    hidden = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        if tag.has_attr("hidden") or hidden.search(str(tag.get("style", ""))) or (
            str(tag.get("aria-hidden", "")).lower() == "true"
        ):
            tag.decompose()
    text = soup.get_text("\n")
    lines = [re.sub(r"[ \t\u00a0]+", " ", ln).strip() for ln in text.split("\n")]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return [Page(None, clean_text(out))]


def read_pdf(data: bytes) -> list[Page]:
    """Text of each PDF page, numbered from 1."""
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                # Many "encrypted" PDFs only restrict permissions and open with an empty password.
                if not reader.decrypt(""):
                    raise ReadError(Outcome.ENCRYPTED, "PDF is password-protected")
            except (FileNotDecryptedError, NotImplementedError, DependencyError) as exc:
                raise ReadError(Outcome.ENCRYPTED, f"PDF is encrypted ({exc})") from None
        pages = []
        for i, page in enumerate(reader.pages, start=1):
            pages.append(Page(i, clean_text(page.extract_text() or "")))
    except ReadError:
        raise
    except FileNotDecryptedError as exc:
        raise ReadError(Outcome.ENCRYPTED, f"PDF is encrypted ({exc})") from None
    except PdfReadError as exc:
        raise ReadError(Outcome.PARSE_ERROR, f"invalid PDF: {exc}") from None
    if not pages:
        raise ReadError(Outcome.EMPTY_TEXT, "PDF has no pages")
    return pages


Reader = Callable[[bytes], list[Page]]


def reader_for(path: Path) -> tuple[str, Reader]:
    """Choose (kind, reader) for a file from its extension."""
    ext = path.suffix.lower()
    if ext == ".pdf":
        return "pdf", read_pdf
    if ext in _TEXT_KINDS:
        return _TEXT_KINDS[ext], read_text
    if ext in _HTML_KINDS:
        return "html", read_html
    raise ReadError(Outcome.UNSUPPORTED_TYPE, f"unsupported file type {ext or '(no extension)'}")


def read_document(path: Path, rel: str) -> tuple[Document, Outcome]:
    """Read one file into a Document and classify the result.

    Returns (document, outcome) with outcome ok or ok_partial; raises ReadError otherwise.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReadError(Outcome.VANISHED, "file disappeared before it could be read") from None
    except OSError as exc:
        raise ReadError(Outcome.UNREADABLE, f"cannot read file: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    kind, reader = reader_for(path)
    try:
        pages = reader(data)
    except ReadError:
        raise
    except MemoryError:
        raise ReadError(Outcome.MEMORY_LIMIT, "ran out of memory while parsing") from None
    except Exception as exc:  # a parser bug must not stop the run
        raise ReadError(Outcome.PARSE_ERROR, f"{type(exc).__name__}: {exc}") from None
    empty = [p for p in pages if not p.text.strip()]
    if len(empty) == len(pages):
        raise ReadError(Outcome.EMPTY_TEXT, "no text could be extracted")
    notes: tuple[str, ...] = ()
    outcome = Outcome.OK
    if empty:
        outcome = Outcome.OK_PARTIAL
        nums = ", ".join(str(p.number) for p in empty[:10])
        notes = (f"{len(empty)} of {len(pages)} pages have no text (pages {nums})",)
    return Document(rel, tuple(pages), kind, digest, notes), outcome
