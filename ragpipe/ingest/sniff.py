"""Deciding a file's type from its content (magic bytes, container layout, text shape).

The extension only refines text (Markdown vs CSV vs plain) and breaks ties for
damaged files; when content and extension disagree, the content wins and the
disagreement is returned as a note for the ingestion report.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from ..datatypes import Outcome
from ..errors import ReadError
from .text import bom_encoding, utf16_without_bom

EXT_KINDS = {
    ".pdf": "pdf",
    ".docx": "docx", ".docm": "docx", ".dotx": "docx",
    ".pptx": "pptx", ".pptm": "pptx", ".ppsx": "pptx",
    ".xlsx": "xlsx", ".xlsm": "xlsx",
    ".csv": "csv", ".tsv": "csv",
    ".eml": "eml",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".md": "md", ".markdown": "md",
    ".txt": "txt", ".text": "txt", ".rst": "txt", ".log": "txt",
}  # fmt: skip
_TEXT_KINDS = {"txt", "md", "csv", "eml", "html"}
_LABEL = {"pdf": "PDF", "docx": "DOCX", "pptx": "PPTX", "xlsx": "XLSX", "csv": "CSV",
          "eml": "e-mail", "html": "HTML", "md": "Markdown", "txt": "plain text"}
_OOXML = (("word/", "docx"), ("ppt/", "pptx"), ("xl/", "xlsx"))
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Formats recognised only to name them in the report.
_OTHER_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\x7fELF", "executable (ELF)"),
    (b"MZ", "Windows executable"),
    (b"{\\rtf", "RTF document"),
    (b"%!PS", "PostScript document"),
    (b"SQLite format 3\x00", "SQLite database"),
)
_PDF_OBJ = re.compile(rb"\d+\s+\d+\s+obj\b")
_HTML_START = re.compile(
    r"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]", re.M)
_MAIL_HEADERS = {"from", "to", "subject", "date", "message-id", "received", "return-path",
                 "mime-version", "delivered-to", "cc", "reply-to", "content-type"}


@dataclass(frozen=True)
class Sniffed:
    """The kind a file will be read as, and a note when that contradicts its extension."""

    kind: str
    note: str = ""


def _ext(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > max(name.rfind("/"), 0) else ""


def _mismatch(kind: str, ext: str) -> str:
    want = EXT_KINDS.get(ext)
    if want is None or want == kind or (want in _TEXT_KINDS and kind in ("txt", "md", "csv")):
        return ""
    return f"content is {_LABEL[kind]} although the extension is {ext}"


def _zip_kind(data: bytes, ext: str) -> str:
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        if EXT_KINDS.get(ext) in ("docx", "pptx", "xlsx"):
            raise ReadError(Outcome.PARSE_ERROR, f"damaged Office file ({exc})") from None
        raise ReadError(Outcome.PARSE_ERROR, f"damaged ZIP archive ({exc})") from None
    for prefix, kind in _OOXML:
        if any(n.startswith(prefix) for n in names):
            return kind
    if "mimetype" in names:
        raise ReadError(Outcome.UNSUPPORTED_TYPE, "OpenDocument/EPUB files are not supported")
    raise ReadError(Outcome.UNSUPPORTED_TYPE, "ZIP archive (not an Office document)")


def _looks_binary(sample: bytes) -> bool:
    """True for bytes that are not text: NULs, or many control bytes."""
    if not sample:
        return False
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 8, 27))
    # A few NULs or control bytes happen in damaged text files; read those as text.
    return controls > 0.1 * len(sample)


def _text_kind(head: str, ext: str) -> str:
    want = EXT_KINDS.get(ext)
    if _HTML_START.match(head) or (want == "html" and "<" in head):
        return "html"
    if want == "eml":
        return "eml"
    headers = {m.group(1).lower() for m in _HEADER_LINE.finditer(head.split("\n\n", 1)[0])}
    if _HEADER_LINE.match(head) and len(headers & _MAIL_HEADERS) >= 3:
        return "eml"
    if want in ("md", "csv", "txt"):
        return want
    return "txt"


def sniff(data: bytes, name: str) -> Sniffed:
    """Decide how to read ``data`` (the content of file ``name``).

    Raises ReadError for empty files, encrypted Office files and types ragpipe cannot read.
    """
    ext = _ext(name)
    if not data:
        raise ReadError(Outcome.EMPTY_TEXT, "file is empty (0 bytes)")
    head = data[:8192]
    kind = ""
    if b"%PDF" in data[:1024]:
        kind = "pdf"
    elif data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = _zip_kind(data, ext)
    elif data.startswith(_OLE):
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise ReadError(Outcome.ENCRYPTED, "password-protected Office document")
        raise ReadError(
            Outcome.UNSUPPORTED_TYPE,
            "legacy Office binary file (.doc/.xls/.ppt/.msg): save it as .docx/.xlsx/.pptx",
        )
    else:
        for magic, label in _OTHER_MAGIC:
            if data.startswith(magic):
                raise ReadError(Outcome.UNSUPPORTED_TYPE, f"unsupported file type: {label}")
    if kind:
        return Sniffed(kind, _mismatch(kind, ext))
    found = bom_encoding(data)
    enc = found[0] if found else utf16_without_bom(data)
    if enc is None and _looks_binary(head):
        if EXT_KINDS.get(ext) == "pdf" or _PDF_OBJ.search(head):
            return Sniffed("pdf", "no %PDF header")  # a damaged PDF: let the PDF parser judge
        what = ext or "no extension"
        raise ReadError(Outcome.UNSUPPORTED_TYPE, f"binary file of unknown type ({what})")
    if enc is None and _PDF_OBJ.search(head) and (b"endobj" in data or EXT_KINDS.get(ext) == "pdf"):
        return Sniffed("pdf", "no %PDF header")
    text_head = head.decode(enc or "utf-8", errors="ignore")  # for sniffing only
    kind = _text_kind(text_head.lstrip("\ufeff"), ext)
    return Sniffed(kind, _mismatch(kind, ext))
