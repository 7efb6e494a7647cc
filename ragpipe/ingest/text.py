"""Text-like formats: decoding bytes to str, plain text, Markdown, HTML and CSV.

Decoding is strict everywhere: a file is either decoded exactly or reported
as ``parse_error``; characters are never silently dropped or replaced.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from typing import Any

from ..datatypes import Outcome, Page
from ..errors import ReadError
from .base import Extracted, ReadOptions

_BOMS = (
    # UTF-32 before UTF-16: the UTF-32-LE BOM starts with the UTF-16-LE one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_C1 = re.compile(rb"[\x80-\x9f]")


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """(encoding, BOM length) when ``data`` starts with a Unicode byte-order mark."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return enc, len(bom)
    return None


def utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when ``data`` looks like BOM-less UTF-16 text, else None.

    Text in Latin scripts stored as UTF-16 has a NUL in every other byte; that
    pattern is what Windows tools write when they omit the BOM.
    """
    sample = data[:4096]
    if len(sample) < 4 or len(data) % 2:
        return None
    even, odd = sample[0::2], sample[1::2]
    n = len(odd)
    if odd.count(0) > 0.4 * n and even.count(0) < 0.05 * n:
        return "utf-16-le"
    if even.count(0) > 0.4 * n and odd.count(0) < 0.05 * n:
        return "utf-16-be"
    return None


def decode_text(data: bytes, declared: str | None = None) -> str:
    """Decode text bytes exactly, or raise ReadError(parse_error).

    Order: BOM, BOM-less UTF-16, strict UTF-8, a ``declared`` charset (e.g. from
    an HTML meta tag), then a detected legacy encoding.
    """
    found = bom_encoding(data)
    if found:
        enc, skip = found
        try:
            return data[skip:].decode(enc)
        except UnicodeDecodeError as exc:
            raise ReadError(Outcome.PARSE_ERROR, f"invalid {enc} after its BOM: {exc}") from None
    enc16 = utf16_without_bom(data)
    if enc16:
        try:
            return data.decode(enc16)
        except UnicodeDecodeError:
            pass  # not UTF-16 after all: try the others
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    if declared:
        try:
            return data.decode(_whatwg(declared, data))
        except (UnicodeDecodeError, LookupError):
            pass
    if _damaged_utf8(data):
        raise ReadError(
            Outcome.PARSE_ERROR,
            f"invalid UTF-8 at byte {utf8_error.start} in a file that is otherwise UTF-8",
        )
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise ReadError(Outcome.PARSE_ERROR, "cannot determine the text encoding")
    enc = best.encoding
    # Short texts often fit several code pages equally well (cp1250 and cp1252 agree on
    # most Western letters); break the tie for cp1252, the most common legacy encoding.
    tied = [m.encoding for m in matches
            if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    if "cp1252" in tied:
        enc = "cp1252"
    enc = _whatwg(enc, data)
    try:
        return data.decode(enc)
    except (UnicodeDecodeError, LookupError) as exc:
        raise ReadError(Outcome.PARSE_ERROR, f"cannot decode as {enc}: {exc}") from None


def _damaged_utf8(data: bytes) -> bool:
    """True when most non-ASCII bytes form valid UTF-8 sequences but some do not.

    Such a file is UTF-8 with a few bad bytes, not a legacy encoding; guessing
    an encoding for it would turn all of its accented letters into mojibake.
    """
    sequences = _UTF8_MULTIBYTE.findall(data)
    stray = sum(1 for b in data if b >= 0x80) - sum(len(s) for s in sequences)
    return len(sequences) > stray


def _whatwg(encoding: str, data: bytes) -> str:
    """Map Latin-1 to Windows-1252 when C1 bytes occur, as browsers do (WHATWG Encoding).

    Real files labelled or detected as ISO-8859-1 are almost always cp1252,
    whose 0x80-0x9F bytes are curly quotes, dashes and the euro sign.
    """
    name = codecs.lookup(encoding).name
    if name in ("latin-1", "iso8859-1", "ascii") and _C1.search(data):
        return "cp1252"
    return name


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Normalize line ends and replace control characters (NUL etc.) that break tokenizers."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(" ", text)


def read_text(data: bytes, options: ReadOptions) -> Extracted:
    """Plain text and Markdown: the whole file is one page."""
    return Extracted([Page(None, clean_text(decode_text(data)))])


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def html_to_text(html: str) -> str:
    """Visible text of an HTML page: no scripts, styles, templates, comments or hidden elements."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    for tag in soup(["script", "style", "noscript", "template", "head", "svg", "iframe", "object"]):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        if (
            tag.has_attr("hidden")
            or _HIDDEN_STYLE.search(str(tag.get("style", "")))
            or str(tag.get("aria-hidden", "")).lower() == "true"
            or (tag.name == "input" and str(tag.get("type", "")).lower() == "hidden")
        ):
            tag.decompose()
    _structure(soup)
    text = soup.get_text("\n")
    lines = [re.sub(r"[ \t\u00a0]+", " ", ln).strip() for ln in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return _close_list_gaps(text)


_ITEM_LINE = re.compile(r"^(?:- |\d{1,2}\. )")


def _close_list_gaps(text: str) -> str:
    """Drop the blank line between list items, and between a list and its "…:" lead-in."""
    lines = text.split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        if not line and out and i + 1 < len(lines) and _ITEM_LINE.match(lines[i + 1]):
            prev = out[-1]
            if prev.endswith(":") or (_ITEM_LINE.match(prev) and prev.startswith(lines[i + 1][:2])):
                continue
        out.append(line)
    return "\n".join(out)


def _structure(soup: Any) -> None:
    """Keep lists and tables readable once the tags are gone.

    List items get a "- " (or "N. " in an ordered list) at the start of their line, and
    each table becomes its rows, one per line, each value labelled with its column
    (``render_rows``), as spreadsheets and Word tables are read: without this a table is
    one cell per line and a row's values can no longer be told apart from the next row's.
    """
    for table in reversed(soup.find_all("table")):  # innermost first
        rows = []
        for tr in table.find_all("tr"):
            if tr.find_parent("table") is not table:
                continue
            cells = tr.find_all(["td", "th"], recursive=False)
            rows.append([c.get_text(" ", strip=True) for c in cells])
        table.replace_with(soup.new_string(f"\n\n{render_rows(rows)}\n\n"))
    for lst in soup.find_all(["ul", "ol"]):
        ordered = lst.name == "ol"
        items = [li for li in lst.find_all("li", recursive=False)]
        for n, li in enumerate(items, start=1):
            text = " ".join(li.get_text(" ", strip=True).split())
            li.replace_with(soup.new_string(f"\n{n}. {text}\n" if ordered else f"\n- {text}\n"))


def read_html(data: bytes, options: ReadOptions) -> Extracted:
    """Visible text of an HTML file, decoded with its meta charset when it declares one."""
    m = _META_CHARSET.search(data[:4096])
    declared = m.group(1).decode("ascii") if m else None
    return Extracted([Page(None, clean_text(html_to_text(decode_text(data, declared))))])


def render_rows(rows: list[list[str]], column_name: Callable[[int], str] | None = None) -> str:
    """Render table rows one per line, every value labelled with its column header.

    The header is the first of the leading rows that is at least half as full
    as the fullest of them, so a title line above a table is not taken for the
    header; rows before it are kept as plain lines. ``column_name(i)`` names a
    column whose header cell is blank (default "column N"). Blank rows are left out.
    """
    rows = [[" ".join(c.split()) for c in r] for r in rows]
    rows = [r for r in rows if any(r)]
    if not rows:
        return ""
    name = column_name or (lambda i: f"column {i + 1}")
    filled = [sum(1 for c in r if c) for r in rows[:10]]
    at = next(i for i, n in enumerate(filled) if 2 * n >= max(filled))
    header = [h or name(i) for i, h in enumerate(rows[at])]
    lines = [" ".join(c for c in r if c) for r in rows[:at]]
    lines.append(" | ".join(header))
    for row in rows[at + 1 :]:
        lines.append(
            "; ".join(
                f"{header[i] if i < len(header) else name(i)}: {v}" for i, v in enumerate(row) if v
            )
        )
    return "\n".join(lines)


def read_csv(data: bytes, options: ReadOptions, delimiter: str | None = None) -> Extracted:
    """CSV/TSV: one line per row, values labelled with the column headers."""
    text = decode_text(data)
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    # Spreadsheet exports can hold long cells; the default limit is 128 KiB.
    csv.field_size_limit(max(csv.field_size_limit(), 64 << 20))
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ReadError(Outcome.PARSE_ERROR, f"invalid CSV: {exc}") from None
    return Extracted([Page(None, clean_text(render_rows(rows)))])
