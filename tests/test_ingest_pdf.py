"""PDF reading: pages, damage, encryption, blank pages, OCR of scans, decompression bombs."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
from fixtures_gen import make_encrypted_pdf, make_flate_bomb_pdf, make_scanned_pdf
from pdfmaker import make_image_only_pdf, make_pdf

from ragpipe.datatypes import Outcome
from ragpipe.errors import ReadError
from ragpipe.ingest import ReadOptions, read_document, read_many
from ragpipe.ingest.pdf import tesseract_languages
from ragpipe.settings import IngestSettings

HAVE_TESSERACT = shutil.which("tesseract") is not None


def read(path, **opts):
    try:
        doc, outcome = read_document(path, path.name, ReadOptions(**opts))
        return doc, outcome, "; ".join(doc.notes)
    except ReadError as exc:
        return None, Outcome(exc.outcome), str(exc)


def need_tesseract():
    """Skip on a developer machine without Tesseract; in CI (CI=true) its absence fails."""
    if not HAVE_TESSERACT:
        if os.environ.get("CI"):
            pytest.fail("tesseract is not installed: .ci/run must install .ci/apt-packages.txt")
        pytest.skip("tesseract not installed (apt-get install tesseract-ocr)")


def test_pages_are_numbered_and_hash_is_of_the_bytes_read(tmp_path):
    make_pdf(tmp_path / "a.pdf", ["First page about apples.", "Second page about pears."])
    doc, outcome, _ = read(tmp_path / "a.pdf")
    assert outcome is Outcome.OK and doc.kind == "pdf"
    assert [(p.number, "apples" in p.text, "pears" in p.text) for p in doc.pages] == [
        (1, True, False), (2, False, True)]
    assert doc.sha256 == hashlib.sha256((tmp_path / "a.pdf").read_bytes()).hexdigest()


def test_blank_pages(tmp_path):
    make_pdf(tmp_path / "blank.pdf", ["", ""])
    doc, outcome, message = read(tmp_path / "blank.pdf")
    assert doc is None and outcome is Outcome.EMPTY_TEXT

    make_pdf(tmp_path / "mixed.pdf", ["Some text.", "", "More text."])
    doc, outcome, message = read(tmp_path / "mixed.pdf")
    assert outcome is Outcome.OK_PARTIAL and "pages 2" in message
    assert [p.number for p in doc.pages] == [1, 2, 3]


@pytest.mark.parametrize("cut", ["header", "half", "no_eof", "no_xref"])
def test_truncated_pdfs_get_a_definite_outcome(tmp_path, cut):
    make_pdf(tmp_path / "full.pdf", ["Alpha beta gamma.", "Delta epsilon."])
    data = (tmp_path / "full.pdf").read_bytes()
    part = {
        "header": data[:16],
        "half": data[: len(data) // 2],
        "no_eof": data[: data.rindex(b"%%EOF")],
        "no_xref": data[: data.rindex(b"xref")],
    }[cut]
    (tmp_path / "cut.pdf").write_bytes(part)
    doc, outcome, message = read(tmp_path / "cut.pdf")
    if cut == "header":
        assert outcome is Outcome.PARSE_ERROR and "invalid PDF" in message
    elif cut in ("no_eof", "no_xref"):  # the page objects are all there: repaired
        assert outcome is Outcome.OK and "Delta epsilon." in doc.pages[1].text
    else:
        assert outcome in (Outcome.OK, Outcome.OK_PARTIAL, Outcome.EMPTY_TEXT, Outcome.PARSE_ERROR)
        assert (doc is not None) == outcome.has_text


def test_encrypted_pdfs(tmp_path):
    make_encrypted_pdf(tmp_path / "locked.pdf", "Salary table", user_password="s3cret")
    doc, outcome, message = read(tmp_path / "locked.pdf")
    assert doc is None and outcome is Outcome.ENCRYPTED and "password" in message

    # Permissions-only encryption (empty user password) opens: it must be read.
    make_encrypted_pdf(tmp_path / "restricted.pdf", "Open handbook", user_password="")
    doc, outcome, message = read(tmp_path / "restricted.pdf")
    assert outcome is Outcome.OK and "Open handbook" in doc.pages[0].text
    assert "encrypted" in message


def test_scanned_page_without_ocr_is_reported(tmp_path, monkeypatch):
    make_scanned_pdf(tmp_path / "scan.pdf", ["Invoice 4711 is due on 3 March."])
    doc, outcome, message = read(tmp_path / "scan.pdf", ocr=False)
    assert doc is None and outcome is Outcome.NEEDS_OCR and "ingest.ocr" in message

    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on this PATH
    tesseract_languages.cache_clear()
    try:
        doc, outcome, message = read(tmp_path / "scan.pdf")
    finally:
        tesseract_languages.cache_clear()
    assert outcome is Outcome.NEEDS_OCR and "not installed" in message


def test_scan_next_to_text_pages_is_partial_without_ocr(tmp_path):
    make_scanned_pdf(tmp_path / "scan.pdf", ["Scanned annex."])
    doc, outcome, _ = read(tmp_path / "scan.pdf", ocr=False)
    assert outcome is Outcome.NEEDS_OCR
    make_pdf(tmp_path / "text.pdf", ["Typed cover letter."])
    from pypdf import PdfWriter

    w = PdfWriter()
    w.append(str(tmp_path / "text.pdf"))
    w.append(str(tmp_path / "scan.pdf"))
    w.write(tmp_path / "both.pdf")
    doc, outcome, message = read(tmp_path / "both.pdf", ocr=False)
    assert outcome is Outcome.OK_PARTIAL and "no text layer on page 2" in message


def test_scanned_pages_are_ocred(tmp_path):
    need_tesseract()
    assert "eng" in (tesseract_languages() or ())
    make_scanned_pdf(tmp_path / "scan.pdf", [
        "Invoice 4711 from Northwind Traders is due on 3 March.",
        "The warehouse in Oslo closes at five.",
    ])
    doc, outcome, message = read(tmp_path / "scan.pdf")
    assert outcome is Outcome.OK, message
    assert "pages 1, 2 read by OCR" in message
    assert "Invoice 4711" in doc.pages[0].text and "Northwind" in doc.pages[0].text
    assert "warehouse in Oslo" in doc.pages[1].text


def test_ocr_of_an_image_without_text_is_empty_text(tmp_path):
    need_tesseract()
    make_image_only_pdf(tmp_path / "pattern.pdf")  # an 8x8 checker pattern: ink, no words
    doc, outcome, message = read(tmp_path / "pattern.pdf")
    assert doc is None and outcome is Outcome.EMPTY_TEXT and "OCR found no text" in message


def test_ocr_stops_at_its_time_budget(tmp_path):
    need_tesseract()
    make_scanned_pdf(tmp_path / "scan.pdf", ["One.", "Two."])
    doc, outcome, message = read(tmp_path / "scan.pdf", budget_s=0.0)
    assert doc is None and outcome is Outcome.TIMEOUT and "time limit" in message


def test_flate_bomb_kills_only_its_worker(tmp_path):
    """A 1 KiB-per-MiB content stream: unbounded, PDFium would inflate 1 GiB into memory."""
    make_flate_bomb_pdf(tmp_path / "bomb.pdf", size=1 << 30)
    make_pdf(tmp_path / "fine.pdf", ["A normal page next to the bomb."])
    settings = IngestSettings(workers=2, timeout_s=60, memory_mb=512)
    files = [(tmp_path / n, n) for n in ("bomb.pdf", "fine.pdf")]
    results = {rel: (doc, outcome, msg) for rel, doc, outcome, msg in read_many(files, settings)}
    doc, outcome, message = results["bomb.pdf"]
    assert doc is None and outcome in (Outcome.MEMORY_LIMIT, Outcome.PARSE_ERROR), message
    assert "memory" in message
    assert results["fine.pdf"][1] is Outcome.OK
