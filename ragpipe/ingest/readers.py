"""Reading one file: bytes on disk -> sniffed type -> format reader -> classified Document.

Every reader either returns its pages or raises ReadError with an Outcome
value naming what went wrong. Deciding ok / ok_partial / empty_text happens
here, in one place, so that no reader can report "success with no text".
The format readers live in one module per family: text (TXT, Markdown, HTML,
CSV), pdf, office (DOCX, PPTX, XLSX) and mail (EML).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ..datatypes import Document, Outcome
from ..errors import ReadError
from .base import Extracted, Reader, ReadOptions
from .mail import read_eml
from .office import read_docx, read_pptx, read_xlsx
from .pdf import read_pdf
from .sniff import sniff
from .text import clean_text, decode_text, read_csv, read_html, read_text

__all__ = ["READER_VERSION", "READERS", "ReadOptions", "clean_text", "decode_text",
           "read_bytes", "read_document", "read_file_bytes"]

READER_VERSION = 3  # bump when extraction output changes, so sync re-reads files

READERS: dict[str, Reader] = {
    "pdf": read_pdf,
    "txt": read_text,
    "md": read_text,
    "html": read_html,
    "csv": read_csv,
    "docx": read_docx,
    "pptx": read_pptx,
    "xlsx": read_xlsx,
    "eml": read_eml,
}


def read_file_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file, refusing files over ``max_bytes`` before reading them."""
    try:
        # stat first: opening a FIFO or device could block or never end.
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError(Outcome.UNREADABLE, "not a regular file")
        if st.st_size > max_bytes:
            raise ReadError(Outcome.TOO_LARGE, _too_large(st.st_size, max_bytes))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ReadError(Outcome.UNREADABLE, "not a regular file")
            data = f.read(max_bytes + 1)  # one byte more tells a file that grew since stat
    except FileNotFoundError:
        raise ReadError(Outcome.VANISHED, "file disappeared before it could be read") from None
    except PermissionError:
        raise ReadError(Outcome.UNREADABLE, "permission denied") from None
    except OSError as exc:
        raise ReadError(Outcome.UNREADABLE, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ReadError(Outcome.TOO_LARGE, _too_large(len(data), max_bytes))
    return data


def _too_large(size: int, limit: int) -> str:
    return f"{size / 2**20:.1f} MiB is over ingest.max_file_mb ({limit / 2**20:g} MiB)"


def read_bytes(data: bytes, name: str, options: ReadOptions | None = None) -> tuple[str, Extracted]:
    """(kind, extracted pages) of a file's content; ``name`` only refines the type.

    Raises ReadError for every failure, including unexpected parser exceptions.
    """
    options = options or ReadOptions()
    sniffed = sniff(data, name)
    try:
        extracted = READERS[sniffed.kind](data, options)
    except ReadError as exc:
        if sniffed.note:
            raise ReadError(exc.outcome, f"{exc} ({sniffed.note})") from None
        raise
    except MemoryError:
        raise ReadError(Outcome.MEMORY_LIMIT, "ran out of memory while parsing") from None
    except RecursionError:
        raise ReadError(Outcome.PARSE_ERROR, "structure nested too deeply to parse") from None
    except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the run
        where = f" ({sniffed.note})" if sniffed.note else ""
        raise ReadError(Outcome.PARSE_ERROR, f"{type(exc).__name__}: {exc}{where}") from None
    if sniffed.note:
        extracted.notes.insert(0, sniffed.note)
    return extracted.kind or sniffed.kind, extracted


def classify(rel: str, kind: str, extracted: Extracted, digest: str) -> tuple[Document, Outcome]:
    """Decide ok / ok_partial, or raise ReadError(empty_text) when no page has text."""
    pages = extracted.pages
    notes = list(extracted.notes)
    empty = [p for p in pages if not p.text.strip()]
    if len(empty) == len(pages):
        detail = f" ({'; '.join(notes)})" if notes else ""
        raise ReadError(Outcome.EMPTY_TEXT, f"no text could be extracted{detail}")
    outcome = Outcome.OK
    if empty:
        outcome = Outcome.OK_PARTIAL
        nums = ", ".join(str(p.number) for p in empty[:10]) + (", ..." if len(empty) > 10 else "")
        notes.append(f"{len(empty)} of {len(pages)} pages have no text (pages {nums})")
    return Document(rel, tuple(pages), kind, digest, tuple(notes)), outcome


def read_document(
    path: Path, rel: str, options: ReadOptions | None = None
) -> tuple[Document, Outcome]:
    """Read one file in this process into a Document and classify the result.

    Returns (document, outcome) with outcome ok or ok_partial; raises ReadError
    otherwise. ``Document.sha256`` is the hash of the bytes that were parsed.
    No isolation: use ``read_many`` for files that may hang or explode.
    """
    options = options or ReadOptions()
    data = read_file_bytes(Path(path), options.max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    kind, extracted = read_bytes(data, rel, options)
    return classify(rel, kind, extracted, digest)
