"""Builders for the ingestion test fixtures: every file is generated, none is committed.

Office files are written with the same libraries ragpipe reads them with
(python-docx, python-pptx, openpyxl) so they are realistic; the hostile ones
(decompression and zip bombs, billion laughs, truncated and encrypted PDFs)
are assembled byte by byte.
"""

from __future__ import annotations

import functools
import struct
import zipfile
import zlib
from email.message import EmailMessage
from pathlib import Path

from pdfmaker import PAGE_HEIGHT, PAGE_WIDTH, _stream, _write_pdf, make_pdf

# ----- bombs -----------------------------------------------------------------------------

_FILL_CHUNK = 16 << 20


@functools.cache
def deflate_fill(prefix: bytes, fill: int, size: int, suffix: bytes) -> tuple[bytes, int, int, int]:
    """A raw deflate stream of ``prefix + bytes([fill]) * size + suffix``, built without
    compressing ``size`` bytes: each 16 MiB chunk is compressed once and ended with a full
    flush, which makes its blocks self-contained, so the same bytes can be repeated.

    Returns (raw deflate, CRC-32, Adler-32, inflated length).
    """
    assert size % _FILL_CHUNK == 0

    def piece(data: bytes, final: bool) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)

    chunk = bytes([fill]) * _FILL_CHUNK
    n = size // _FILL_CHUNK
    raw = piece(prefix, False) + piece(chunk, False) * n + piece(suffix, True)
    crc, adler = zlib.crc32(prefix), zlib.adler32(prefix)
    for _ in range(n):
        crc, adler = zlib.crc32(chunk, crc), zlib.adler32(chunk, adler)
    crc, adler = zlib.crc32(suffix, crc), zlib.adler32(suffix, adler)
    return raw, crc, adler, len(prefix) + size + len(suffix)


def make_flate_bomb_pdf(path: Path, size: int = 1 << 30) -> None:
    """A one-page PDF whose content stream inflates to ``size`` bytes of spaces."""
    raw, _, adler, _ = deflate_fill(b"BT /F1 11 Tf 54 700 Td (bomb) Tj ET\n", 32, size, b"\n")
    stream = b"\x78\xda" + raw + struct.pack(">I", adler)  # zlib framing around raw deflate
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 5 0 R"
        b" >> >> /Contents 4 0 R >>" % (PAGE_WIDTH, PAGE_HEIGHT),
        _stream(stream, b" /Filter /FlateDecode"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    _write_pdf(path, objects)


def write_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> None:
    """Write a ZIP from (name, raw deflate data, crc32, inflated size) members, by hand,
    so that members can be larger than what could be compressed in a test."""
    buf = bytearray()
    central = bytearray()
    for name, data, crc, usize in members:
        fname = name.encode()
        offset = len(buf)
        buf += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), usize,
                           len(fname), 0) + fname + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc,
                               len(data), usize, len(fname), 0, 0, 0, 0, 0, offset) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(buf), 0)
    Path(path).write_bytes(bytes(buf + central + end))


def _member(name: str, data: bytes) -> tuple[str, bytes, int, int]:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return name, c.compress(data) + c.flush(), zlib.crc32(data), len(data)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_DOCX_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
    b'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
    b'"application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.'
    b'openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_DOCX_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
    b'.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
    b'openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target='
    b'"word/document.xml"/></Relationships>'
)


def make_docx_zip_bomb(path: Path, size: int = 1 << 30) -> None:
    """A DOCX whose word/document.xml inflates to ``size`` bytes (one huge text run)."""
    prefix = f'<?xml version="1.0"?><w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>'.encode()
    suffix = b"</w:t></w:r></w:p></w:body></w:document>"
    raw, crc, _, usize = deflate_fill(prefix, ord("A"), size, suffix)
    write_zip(path, [_member("[Content_Types].xml", _DOCX_TYPES),
                     _member("_rels/.rels", _DOCX_RELS),
                     ("word/document.xml", raw, crc, usize)])


_LAUGHS = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10)
)  # &lol9; expands to 10**9 "lol"s: 3 GB from a few hundred bytes


def make_docx_billion_laughs(path: Path) -> None:
    """A DOCX whose document.xml defines the billion-laughs entity chain and uses it."""
    entities = _LAUGHS
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE w:document [{entities}]>'
        f'<w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>Laughs: &lol9;</w:t></w:r></w:p>'
        "<w:p><w:r><w:t>Plain paragraph after the entities.</w:t></w:r></w:p>"
        "</w:body></w:document>"
    ).encode()
    write_zip(path, [_member("[Content_Types].xml", _DOCX_TYPES),
                     _member("_rels/.rels", _DOCX_RELS),
                     _member("word/document.xml", xml)])


def make_xlsx_billion_laughs(path: Path) -> None:
    """An XLSX whose first sheet defines the billion-laughs entities and uses them in a cell."""
    make_xlsx(path)
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    root = sheet.index("<worksheet")
    doctype = f"<!DOCTYPE worksheet [{_LAUGHS}]>"
    parts["xl/worksheets/sheet1.xml"] = (
        sheet[:root] + doctype + sheet[root:].replace("Laptops", "&lol9;")
    ).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)


# ----- PDFs -------------------------------------------------------------------------------


def make_encrypted_pdf(path: Path, text: str, user_password: str, owner: str = "owner") -> None:
    """A text PDF encrypted with RC4-128 (pure Python in pypdf); '' makes it open freely."""
    from pypdf import PdfWriter

    plain = Path(str(path) + ".plain.pdf")
    make_pdf(plain, [text])
    writer = PdfWriter(clone_from=plain)
    writer.encrypt(user_password=user_password, owner_password=owner, algorithm="RC4-128")
    writer.write(path)
    plain.unlink()


def make_scanned_pdf(path: Path, pages: list[str], dpi: int = 150) -> None:
    """A PDF whose pages are only images of rendered text, like a scanner's output."""
    import pypdfium2 as pdfium

    text_pdf = Path(str(path) + ".text.pdf")
    make_pdf(text_pdf, pages)
    doc = pdfium.PdfDocument(text_pdf)
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for i in range(len(doc)):
        bitmap = doc[i].render(scale=dpi / 72, grayscale=True)
        w, h, stride = bitmap.width, bitmap.height, bitmap.stride
        buf = bytes(bitmap.buffer)
        pixels = b"".join(buf[y * stride : y * stride + w] for y in range(h))
        page_id = len(objects) + 1
        kids.append(page_id)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /XObject"
            b" << /Im1 %d 0 R >> >> /Contents %d 0 R >>"
            % (PAGE_WIDTH, PAGE_HEIGHT, page_id + 1, page_id + 2)
        )
        objects.append(_stream(
            zlib.compress(pixels),
            b" /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray"
            b" /BitsPerComponent 8 /Filter /FlateDecode" % (w, h),
        ))
        objects.append(_stream(b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % (PAGE_WIDTH, PAGE_HEIGHT)))
    doc.close()
    text_pdf.unlink()
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    _write_pdf(path, objects)


# ----- Office and e-mail -------------------------------------------------------------------


def make_docx(path: Path) -> None:
    """A Word file with a heading, paragraphs and a table."""
    import docx

    d = docx.Document()
    d.add_heading("Travel policy", level=1)
    d.add_paragraph("Employees book economy class for flights under six hours.")
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("City", "Hotel cap", "Currency"), ("Oslo", "2100", "NOK"),
                             ("Lyon", "180", "EUR")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("Receipts are kept for seven years.")
    d.save(path)


def make_pptx(path: Path) -> None:
    """A three-slide deck: title, bullet text with speaker notes, and an empty slide."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[0])
    s1.shapes.title.text = "Quarterly review"
    s1.placeholders[1].text = "Northwind Traders"
    s2 = prs.slides.add_slide(prs.slide_layouts[1])
    s2.shapes.title.text = "Revenue"
    s2.placeholders[1].text = "Revenue grew 12 percent in the third quarter."
    s2.notes_slide.notes_text_frame.text = "Mention the Oslo office."
    table = s2.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    for c, (head, value) in enumerate([("Region", "North"), ("Sales", "4.2M")]):
        table.cell(0, c).text = head
        table.cell(1, c).text = value
    prs.slides.add_slide(prs.slide_layouts[6])  # blank layout: no text at all
    prs.save(path)


def make_xlsx(path: Path) -> None:
    """A workbook with a titled data sheet and an empty second sheet."""
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Budget"
    sheet.append(["Budget 2024"])
    sheet.append(["Item", "Amount", "Due", None])
    sheet.append(["Laptops", 12000, dt.datetime(2024, 3, 1), "urgent"])
    sheet.append(["Chairs", 2500.5, dt.datetime(2024, 5, 15), None])
    book.create_sheet("Empty")
    book.save(path)


def make_eml(path: Path) -> None:
    """A multipart e-mail: plain and HTML bodies, a CSV and a PDF attachment."""
    msg = EmailMessage()
    msg["From"] = "Ana Lima <ana@example.org>"
    msg["To"] = "team@example.org"
    msg["Subject"] = "Offsite in Lisboa"
    msg["Date"] = "Tue, 04 Jun 2024 09:30:00 +0200"
    msg.set_content("The offsite is in Lisboa on 12 June.\nBring your badge.")
    msg.add_alternative("<p>The offsite is in <b>Lisboa</b> on 12 June.</p>", subtype="html")
    msg.add_attachment("name,room\nAna,Tejo\nBo,Douro\n", subtype="csv", filename="rooms.csv")
    msg.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf",
                       filename="agenda.pdf")
    Path(path).write_bytes(bytes(msg))


def zip_names(path: Path) -> list[str]:
    """Member names of a ZIP file (to check what a fixture contains)."""
    with zipfile.ZipFile(path) as z:
        return z.namelist()
