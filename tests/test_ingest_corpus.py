"""Every file of the shared PDF robustness corpus gets a definite outcome, in one parallel run.

192 files: real PDFs from many generators, pypdf's encryption variants and damaged
files, and hand-built PDFs that each break one structural rule of ISO 32000.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from ragpipe.datatypes import Outcome
from ragpipe.ingest import read_many, walk
from ragpipe.settings import IngestSettings

PDFS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pdfs"


@pytest.fixture(scope="module")
def corpus():
    if not PDFS.is_dir():
        pytest.skip(f"{PDFS} not present")
    settings = IngestSettings(timeout_s=60, memory_mb=1024)
    files = [(f.path, f.rel) for f in walk(PDFS, settings.skip)]
    results = list(read_many(files, settings))
    return files, {rel: (doc, outcome, msg) for rel, doc, outcome, msg in results}, results


def test_every_file_has_one_definite_outcome(corpus):
    files, by_rel, results = corpus
    assert len(files) >= 190
    assert len(results) == len(by_rel) == len(files)
    assert set(by_rel) == {rel for _, rel in files}
    counts = collections.Counter(o for _, o, _ in by_rel.values())
    assert counts[Outcome.TIMEOUT] == 0, "no file of this corpus should hang"
    assert counts[Outcome.OK] + counts[Outcome.OK_PARTIAL] >= 140, counts
    for rel, (doc, outcome, msg) in by_rel.items():
        assert (doc is not None) == outcome.has_text, rel
        if doc is not None:
            assert any(p.text.strip() for p in doc.pages), rel
        else:
            assert msg, f"{rel}: {outcome.value} without a message"


def test_encryption_variants(corpus):
    _, by_rel, _ = corpus
    enc = {rel: o for rel, (_, o, _) in by_rel.items() if "/encryption/" in rel}
    assert len(enc) >= 10
    for rel, outcome in enc.items():
        name = Path(rel).name
        if "user-password" in name or "both-passwords" in name:
            assert outcome is Outcome.ENCRYPTED, rel
        elif "empty-password" in name or "owner-password" in name or "unencrypted" in name:
            assert outcome.has_text, rel
    assert by_rel["pypdf-resources/crazyones-encrypted-256.pdf"][1] is Outcome.ENCRYPTED


def test_damaged_files_are_recovered_or_explained(corpus):
    _, by_rel, _ = corpus
    hand = {rel: v for rel, v in by_rel.items() if rel.startswith("pdf-handbuilt-test-corpus/T")}
    assert len(hand) >= 85
    # Damage that leaves the page objects intact is repaired.
    for name in ("T04_002_EOF-missing.pdf", "T03_007_offset_wrong.pdf",
                 "T04_017_trailer-no-startxref-keyword.pdf",
                 "T01_006_header-invalid-syntax-no-pdf.pdf"):
        assert by_rel[f"pdf-handbuilt-test-corpus/{name}"][1] is Outcome.OK, name
    # A file without a document catalog has nothing to read: a parse error that says why.
    doc, outcome, msg = by_rel[
        "pdf-handbuilt-test-corpus/T02-01_001_document-catalog-No-document-catalog.pdf"]
    assert outcome is Outcome.PARSE_ERROR and "invalid PDF" in msg


def test_non_pdf_files_beside_them_are_read_by_content(corpus):
    _, by_rel, _ = corpus
    doc, outcome, _ = by_rel["py-pdf-sample-files/README.md"]
    assert outcome is Outcome.OK and doc.kind == "md"
    assert by_rel["py-pdf-sample-files/files.json"][1] is Outcome.OK
