"""Format readers, type sniffing and text decoding, read in-process from generated files."""

from __future__ import annotations

import hashlib
import zipfile

import pytest
from fixtures_gen import (
    make_docx,
    make_docx_billion_laughs,
    make_docx_zip_bomb,
    make_eml,
    make_pptx,
    make_xlsx,
    make_xlsx_billion_laughs,
)
from pdfmaker import make_pdf

from ragpipe.chunking import Chunker
from ragpipe.datatypes import Outcome
from ragpipe.errors import ReadError
from ragpipe.ingest import ReadOptions, read_document


def read(path, rel=None, **opts):
    """read_document, returning (document or None, outcome, message)."""
    try:
        doc, outcome = read_document(path, rel or path.name, ReadOptions(**opts))
        return doc, outcome, "; ".join(doc.notes)
    except ReadError as exc:
        return None, Outcome(exc.outcome), str(exc)


def text_of(doc) -> str:
    return "\n".join(p.text for p in doc.pages)


# ----- encodings ---------------------------------------------------------------------------

FRENCH = "Le café crème coûte 3 €. « Très bien », dit-elle — naïve.\n"
RUSSIAN = "Её письмо пришло вчера. Мы ответим завтра утром.\n"


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("utf8.txt", FRENCH.encode("utf-8"), FRENCH),
        ("bom.txt", b"\xef\xbb\xbf" + FRENCH.encode("utf-8"), FRENCH),
        ("u16le.txt", "\ufeff".encode("utf-16-le") + FRENCH.encode("utf-16-le"), FRENCH),
        ("u16be-nobom.txt", (FRENCH * 3).encode("utf-16-be"), FRENCH * 3),
        ("u16le-nobom.txt", (FRENCH * 3).encode("utf-16-le"), FRENCH * 3),
        ("cp1252.txt", (FRENCH * 5).encode("cp1252"), FRENCH * 5),
        ("cp1251.txt", (RUSSIAN * 5).encode("cp1251"), RUSSIAN * 5),
        ("latin1.txt", ("Ærø og Ålborg, søndag og fødselsdag.\n" * 5).encode("latin-1"),
         "Ærø og Ålborg, søndag og fødselsdag.\n" * 5),
    ],
)
def test_text_encodings_decode_exactly(tmp_path, name, data, expected):
    (tmp_path / name).write_bytes(data)
    doc, outcome, _ = read(tmp_path / name)
    assert outcome is Outcome.OK
    assert doc.pages[0].text == expected
    assert doc.sha256 == hashlib.sha256(data).hexdigest()


def test_damaged_utf8_is_reported_not_guessed(tmp_path):
    good = ("Größe und Maße: " * 20).encode("utf-8")
    (tmp_path / "bad.txt").write_bytes(good + b"\xff\xfe broken " + b"Ende.")
    doc, outcome, message = read(tmp_path / "bad.txt")
    assert doc is None and outcome is Outcome.PARSE_ERROR
    assert f"invalid UTF-8 at byte {len(good)} " in message


def test_nul_and_control_characters_are_removed(tmp_path):
    (tmp_path / "ctl.txt").write_bytes(b"alpha\x00beta\x07gamma\r\ndelta\x1b[0m\x0cend\n")
    doc, outcome, _ = read(tmp_path / "ctl.txt")
    assert outcome is Outcome.OK
    text = doc.pages[0].text
    assert text.split() == ["alpha", "beta", "gamma", "delta", "[0m", "end"]
    assert not any(ord(c) < 32 and c != "\n" for c in text)


def test_whitespace_only_text_is_empty_text(tmp_path):
    (tmp_path / "blank.txt").write_text("  \n\t\n")
    assert read(tmp_path / "blank.txt")[1] is Outcome.EMPTY_TEXT


# ----- text formats ------------------------------------------------------------------------


def test_markdown_keeps_heading_path_for_chunks(tmp_path):
    md = "# Travel\n\nIntro.\n\n## Hotels\n\nThe hotel cap in Oslo is 2100 NOK.\n"
    (tmp_path / "policy.md").write_text(md)
    doc, outcome, _ = read(tmp_path / "policy.md")
    assert outcome is Outcome.OK and doc.kind == "md" and doc.pages[0].text == md
    chunks = Chunker(lambda s: len(s.split()), size=8, overlap=0, limit=16).split(doc)
    oslo = next(c for c in chunks if "Oslo" in c.text)
    assert oslo.heading == "Travel > Hotels"


def test_html_keeps_only_visible_text(tmp_path):
    html = (
        "<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style>"
        "<script>var secret='script text';</script></head><body><h1>Visible heading</h1>"
        "<p>Shown paragraph.</p><div hidden>hidden attribute</div>"
        "<p style='display: none'>display none</p><span aria-hidden='true'>aria</span>"
        "<!-- a comment --><noscript>noscript text</noscript><input type='hidden' value='x'>"
        "<template><p>template text</p></template><p>Café € sign</p></body></html>"
    )
    (tmp_path / "page.html").write_bytes(
        html.replace("<head>", "<head><meta charset='windows-1252'>").encode("cp1252")
    )
    doc, outcome, _ = read(tmp_path / "page.html")
    assert outcome is Outcome.OK and doc.kind == "html"
    text = doc.pages[0].text
    assert "Visible heading" in text and "Shown paragraph." in text and "Café € sign" in text
    for gone in ("script text", "color", "hidden attribute", "display none", "aria",
                 "a comment", "noscript", "template text"):
        assert gone not in text


def test_csv_rows_carry_their_headers(tmp_path):
    (tmp_path / "staff.csv").write_text("name;room;phone\nAna;Tejo;123\nBo;;456\n")
    doc, outcome, _ = read(tmp_path / "staff.csv")
    assert outcome is Outcome.OK and doc.kind == "csv"
    lines = doc.pages[0].text.splitlines()
    assert lines == ["name | room | phone", "name: Ana; room: Tejo; phone: 123",
                     "name: Bo; phone: 456"]


def test_tsv_and_title_row_above_header(tmp_path):
    (tmp_path / "t.tsv").write_text("Inventory 2024\t\t\nitem\tcount\tplace\nbolts\t40\tshelf A\n")
    doc, _, _ = read(tmp_path / "t.tsv")
    assert doc.pages[0].text.splitlines() == [
        "Inventory 2024", "item | count | place", "item: bolts; count: 40; place: shelf A"
    ]


# ----- Office and e-mail ----------------------------------------------------------------------


def test_docx_paragraphs_and_tables_in_order(tmp_path):
    make_docx(tmp_path / "policy.docx")
    doc, outcome, _ = read(tmp_path / "policy.docx")
    assert outcome is Outcome.OK and doc.kind == "docx"
    text = text_of(doc)
    assert text.index("Travel policy") < text.index("economy class") < text.index("Oslo")
    assert "City: Oslo; Hotel cap: 2100; Currency: NOK" in text
    assert text.rstrip().endswith("Receipts are kept for seven years.")


def test_pptx_slides_are_pages_with_notes_and_tables(tmp_path):
    make_pptx(tmp_path / "deck.pptx")
    doc, outcome, message = read(tmp_path / "deck.pptx")
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert "Quarterly review" in doc.pages[0].text
    slide2 = doc.pages[1].text
    assert "Revenue grew 12 percent" in slide2 and "Notes: Mention the Oslo office." in slide2
    assert "Region: North; Sales: 4.2M" in slide2
    assert outcome is Outcome.OK_PARTIAL and "page" in message  # slide 3 is blank


def test_xlsx_rows_with_headers_and_values(tmp_path):
    make_xlsx(tmp_path / "budget.xlsx")
    doc, outcome, message = read(tmp_path / "budget.xlsx")
    assert outcome is Outcome.OK and doc.kind == "xlsx"
    assert [p.number for p in doc.pages] == [1]
    lines = doc.pages[0].text.splitlines()
    assert lines[:3] == ["Sheet: Budget", "Budget 2024", "Item | Amount | Due | column D"]
    assert lines[3] == "Item: Laptops; Amount: 12000; Due: 2024-03-01; column D: urgent"
    assert lines[4] == "Item: Chairs; Amount: 2500.5; Due: 2024-05-15"
    assert "Empty" in message


def test_eml_headers_body_and_text_attachments(tmp_path):
    make_eml(tmp_path / "offsite.eml")
    doc, outcome, message = read(tmp_path / "offsite.eml")
    assert outcome is Outcome.OK and doc.kind == "eml"
    text = doc.pages[0].text
    assert "From: Ana Lima <ana@example.org>" in text and "Subject: Offsite in Lisboa" in text
    assert "Bring your badge." in text
    assert "Attachment: rooms.csv" in text and "Bo,Douro" in text
    assert "agenda.pdf" in message and "%PDF" not in text


def test_eml_detected_by_content_without_extension(tmp_path):
    make_eml(tmp_path / "message")
    doc, outcome, _ = read(tmp_path / "message")
    assert outcome is Outcome.OK and doc.kind == "eml"


# ----- sniffing and mismatches -----------------------------------------------------------------


def test_type_comes_from_content_and_mismatch_is_noted(tmp_path):
    make_docx(tmp_path / "report.pdf")  # a Word file with the wrong extension
    doc, outcome, message = read(tmp_path / "report.pdf")
    assert outcome is Outcome.OK and doc.kind == "docx"
    assert "DOCX" in message and ".pdf" in message

    make_pdf(tmp_path / "scan.txt", ["A PDF saved as text."])
    doc, _, message = read(tmp_path / "scan.txt")
    assert doc.kind == "pdf" and "A PDF saved as text." in text_of(doc) and ".txt" in message

    (tmp_path / "download.pdf").write_text("<!doctype html><html><body>Login page</body></html>")
    doc, _, message = read(tmp_path / "download.pdf")
    assert doc.kind == "html" and doc.pages[0].text == "Login page" and "HTML" in message


@pytest.mark.parametrize(
    "name, data, outcome, words",
    [
        ("empty.txt", b"", Outcome.EMPTY_TEXT, "0 bytes"),
        ("empty.pdf", b"", Outcome.EMPTY_TEXT, "0 bytes"),
        ("photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(200), Outcome.UNSUPPORTED_TYPE,
         "JPEG"),
        ("image.pdf", b"\x89PNG\r\n\x1a\n" + bytes(100), Outcome.UNSUPPORTED_TYPE, "PNG"),
        ("blob.bin", bytes(range(256)) * 8, Outcome.UNSUPPORTED_TYPE, "binary"),
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), Outcome.UNSUPPORTED_TYPE,
         "legacy"),
        ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64)
         + "EncryptedPackage".encode("utf-16-le") + bytes(64), Outcome.ENCRYPTED, "password"),
        ("cut.docx", b"PK\x03\x04" + bytes(50), Outcome.PARSE_ERROR, "damaged"),
    ],
)
def test_unreadable_types_get_a_definite_outcome(tmp_path, name, data, outcome, words):
    (tmp_path / name).write_bytes(data)
    doc, got, message = read(tmp_path / name)
    assert doc is None and got is outcome and words in message


def test_plain_zip_and_opendocument_are_unsupported(tmp_path):
    with zipfile.ZipFile(tmp_path / "files.zip", "w") as z:
        z.writestr("a.txt", "hello")
    with zipfile.ZipFile(tmp_path / "notes.odt", "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", "<x/>")
    assert read(tmp_path / "files.zip")[1] is Outcome.UNSUPPORTED_TYPE
    assert read(tmp_path / "notes.odt")[1] is Outcome.UNSUPPORTED_TYPE


def test_text_with_unknown_extension_is_read_as_text(tmp_path):
    (tmp_path / "settings.cfg").write_text("[server]\nport = 8080\n")
    doc, outcome, _ = read(tmp_path / "settings.cfg")
    assert outcome is Outcome.OK and doc.kind == "txt"


# ----- hostile Office files (in-process: refused or defused before any large allocation) -------


def test_docx_zip_bomb_is_refused_before_inflating(tmp_path):
    make_docx_zip_bomb(tmp_path / "bomb.docx", size=512 << 20)
    doc, outcome, message = read(tmp_path / "bomb.docx", max_unzipped_bytes=64 << 20)
    assert doc is None and outcome is Outcome.MEMORY_LIMIT and "zip bomb" in message


@pytest.mark.parametrize("name, make", [("laughs.docx", make_docx_billion_laughs),
                                        ("laughs.xlsx", make_xlsx_billion_laughs)])
def test_billion_laughs_is_not_expanded(tmp_path, name, make):
    make(tmp_path / name)
    doc, outcome, message = read(tmp_path / name)
    if doc is not None:  # a parser that keeps entities unexpanded is fine too
        assert "lollollol" not in text_of(doc)
    else:
        assert outcome is Outcome.PARSE_ERROR
        assert "entit" in message.lower() or "amplification" in message.lower()


def test_truncated_and_corrupt_office_files(tmp_path):
    make_xlsx(tmp_path / "full.xlsx")
    data = (tmp_path / "full.xlsx").read_bytes()
    (tmp_path / "half.xlsx").write_bytes(data[: len(data) // 2])
    doc, outcome, _ = read(tmp_path / "half.xlsx")
    assert doc is None and outcome is Outcome.PARSE_ERROR
