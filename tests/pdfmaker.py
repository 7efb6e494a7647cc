"""Tiny stdlib-only PDF 1.4 writer used to build test fixtures and the sample corpus.

``make_pdf`` writes one US Letter page per input string, set in the standard
Type1 font Helvetica (WinAnsiEncoding) at 11 pt, wrapping lines at about 90
characters.  Blank lines separate paragraphs; an empty string gives a blank
page with no text operators.  Text that runs past the bottom of the page is
the caller's problem: ``layout_lines(text)`` should give at most ``MAX_LINES``.
``make_image_only_pdf`` writes a one-page PDF holding only a small uncompressed
grayscale image, a stand-in for a scanned page.
"""

from __future__ import annotations

import os
import textwrap

PAGE_WIDTH = 612  # US Letter, in points
PAGE_HEIGHT = 792
MARGIN_LEFT = 54
MARGIN_TOP = 60
MARGIN_BOTTOM = 40
FONT_SIZE = 11
LEADING = 13
WRAP_WIDTH = 90
# Number of text lines that fit on one page between the top and bottom margins.
MAX_LINES = (PAGE_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM) // LEADING + 1


def _pdf_string(text: str) -> bytes:
    """Encode *text* as a PDF literal string (WinAnsi/cp1252), escaping specials."""
    raw = text.encode("cp1252", errors="replace")
    out = bytearray(b"(")
    for byte in raw:
        if byte in (0x28, 0x29, 0x5C):  # ( ) \
            out += b"\\" + bytes([byte])
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    out += b")"
    return bytes(out)


def _info_string(text: str) -> bytes:
    """Encode a document-information string: literal if ASCII, else UTF-16BE hex with BOM."""
    if text.isascii():
        return _pdf_string(text)
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def layout_lines(page_text: str) -> list[str]:
    """Split page text into output lines: wrap long lines, keep blank lines."""
    lines: list[str] = []
    for src in page_text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        src = src.rstrip().expandtabs(4)
        if not src.strip():
            lines.append("")
            continue
        indent = src[: len(src) - len(src.lstrip(" "))]
        wrapped = textwrap.wrap(
            src.strip(),
            width=WRAP_WIDTH,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=True,
            break_on_hyphens=False,
        )
        lines.extend(wrapped or [""])
    # Collapse runs of blank lines and trim leading/trailing blanks.
    collapsed: list[str] = []
    for line in lines:
        if line == "" and (not collapsed or collapsed[-1] == ""):
            continue
        collapsed.append(line)
    while collapsed and collapsed[-1] == "":
        collapsed.pop()
    return collapsed


def _content_stream(page_text: str) -> bytes:
    lines = layout_lines(page_text)
    if not lines:
        return b""
    ops = [
        b"BT",
        b"/F1 %d Tf" % FONT_SIZE,
        b"%d TL" % LEADING,
        b"%d %d Td" % (MARGIN_LEFT, PAGE_HEIGHT - MARGIN_TOP),
    ]
    first = True
    for line in lines:
        if not first:
            ops.append(b"T*")
        first = False
        if line:
            ops.append(_pdf_string(line) + b" Tj")
    ops.append(b"ET")
    return b"\n".join(ops) + b"\n"


def _write_pdf(path: str | os.PathLike, objects: list[bytes], info_id: int | None = None) -> None:
    """Serialise *objects* (object 1 must be the Catalog) with an exact xref table."""
    buf = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(buf))
        buf += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref_pos = len(buf)
    buf += b"xref\n0 %d\n" % (len(objects) + 1)
    buf += b"0000000000 65535 f \n"
    for off in offsets:
        buf += b"%010d 00000 n \n" % off
    buf += b"trailer\n<< /Size %d /Root 1 0 R" % (len(objects) + 1)
    if info_id is not None:
        buf += b" /Info %d 0 R" % info_id
    buf += b" >>\nstartxref\n%d\n%%%%EOF\n" % xref_pos
    with open(path, "wb") as fh:
        fh.write(bytes(buf))


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def make_pdf(path, pages: list[str], *, title: str | None = None) -> None:
    """Write a simple text PDF at *path* with one page per string in *pages*."""
    if not pages:
        raise ValueError("a PDF needs at least one page")
    n = len(pages)
    # Object layout: 1 Catalog, 2 Pages, 3 Font, then (Page, Contents) pairs,
    # then an optional Info dictionary last.
    page_ids = [4 + 2 * i for i in range(n)]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % pid for pid in page_ids), n),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for pid, text in zip(page_ids, pages, strict=True):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % (PAGE_WIDTH, PAGE_HEIGHT, pid + 1)
        )
        objects.append(_stream(_content_stream(text)))
    info_id = None
    if title is not None:
        objects.append(b"<< /Title " + _info_string(title) + b" /Producer (ragpipe pdfmaker) >>")
        info_id = len(objects)
    _write_pdf(path, objects, info_id)


def make_image_only_pdf(path) -> None:
    """Write a one-page PDF whose only content is an 8x8 gray image (no text)."""
    size = 8
    pixels = bytes(
        (32 + 28 * ((x + y) % 8)) if (x // 2 + y // 2) % 2 else 230
        for y in range(size)
        for x in range(size)
    )
    content = b"q\n432 0 0 432 90 180 cm\n/Im1 Do\nQ\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d]"
        b" /Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R >>"
        % (PAGE_WIDTH, PAGE_HEIGHT),
        _stream(
            pixels,
            b" /Type /XObject /Subtype /Image /Width %d /Height %d"
            b" /ColorSpace /DeviceGray /BitsPerComponent 8" % (size, size),
        ),
        _stream(content),
    ]
    _write_pdf(path, objects)
