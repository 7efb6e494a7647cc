"""Office Open XML: DOCX (body text and tables), PPTX (one page per slide), XLSX (one per sheet).

All three are ZIP containers of XML parts. Before any part is parsed, the
declared sizes of the parts are checked, so a zip bomb is refused instead of
being inflated (``zipfile`` also stops at the declared size and fails the CRC
check when a part lies about it). The XML parsers of python-docx and
python-pptx do not resolve entities, so billion-laughs documents stay small.
"""

from __future__ import annotations

import datetime as dt
import io
import warnings
import zipfile
from collections.abc import Iterator

from ..datatypes import Outcome, Page
from ..errors import ReadError
from .base import Extracted, ReadOptions
from .text import clean_text, render_rows

# A part this large that also compresses this well is a bomb, not a document.
_BOMB_PART_BYTES = 64 << 20
_BOMB_RATIO = 1000


def check_zip(data: bytes, options: ReadOptions) -> None:
    """Refuse a ZIP container whose parts would inflate past the configured limit."""
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ReadError(Outcome.PARSE_ERROR, f"damaged ZIP container ({exc})") from None
    total = sum(i.file_size for i in infos)
    limit = options.max_unzipped_bytes
    if total > limit:
        raise ReadError(
            Outcome.MEMORY_LIMIT,
            f"refused: its parts inflate to {total / 2**20:.0f} MiB "
            f"(limit {limit / 2**20:.0f} MiB); likely a zip bomb",
        )
    for i in infos:
        if i.file_size > _BOMB_PART_BYTES and i.file_size > _BOMB_RATIO * max(i.compress_size, 1):
            raise ReadError(
                Outcome.MEMORY_LIMIT,
                f"refused: part {i.filename} inflates {i.file_size // max(i.compress_size, 1)}"
                "-fold; likely a zip bomb",
            )


def read_docx(data: bytes, options: ReadOptions) -> Extracted:
    """Paragraphs and tables of a Word document's body, in document order."""
    check_zip(data, options)
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    blocks: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = [[cell.text for cell in row.cells] for row in block.rows]
            blocks.append(render_rows(rows))
        else:
            blocks.append(block.text)
    text = "\n".join(b for b in blocks)
    return Extracted([Page(None, clean_text(text).strip())])


def _shapes(shapes) -> Iterator:  # noqa: ANN001 - python-pptx shape collections
    """Every shape, descending into groups."""
    for shape in shapes:
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
            yield from _shapes(shape.shapes)
        else:
            yield shape


def read_pptx(data: bytes, options: ReadOptions) -> Extracted:
    """Text of each slide (text frames, tables, speaker notes); the slide number is the page."""
    check_zip(data, options)
    from pptx import Presentation

    presentation = Presentation(io.BytesIO(data))
    pages = []
    for number, slide in enumerate(presentation.slides, start=1):
        parts: list[str] = []
        for shape in _shapes(slide.shapes):
            if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
                parts.append(shape.text_frame.text)
            elif getattr(shape, "has_table", False) and shape.has_table:
                rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
                parts.append(render_rows(rows))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                parts.append("Notes: " + notes.text)
        text = "\n".join(p.strip() for p in parts if p.strip())
        pages.append(Page(number, clean_text(text)))
    if not pages:
        raise ReadError(Outcome.EMPTY_TEXT, "presentation has no slides")
    return Extracted(pages)


def _cell(value: object) -> str:
    """A spreadsheet value as it would read in the sheet."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_xlsx(data: bytes, options: ReadOptions) -> Extracted:
    """Each worksheet with data is a page (numbered by sheet position); rows keep their headers."""
    check_zip(data, options)
    import openpyxl
    from openpyxl.utils import get_column_letter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about unsupported extensions
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            pages: list[Page] = []
            empty: list[str] = []
            for number, sheet in enumerate(book.worksheets, start=1):
                rows = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
                body = render_rows(rows, lambda i: f"column {get_column_letter(i + 1)}")
                if body.strip():
                    pages.append(Page(number, clean_text(f"Sheet: {sheet.title}\n{body}")))
                else:
                    empty.append(sheet.title)
        finally:
            book.close()
    notes = [f"empty sheets left out: {', '.join(empty)}"] if empty and pages else []
    return Extracted(pages, notes)
