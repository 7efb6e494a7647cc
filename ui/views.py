"""Pieces of the pages: an answer's sources and the source dialog, feedback, the model card.

The source dialog shows the document's summary when one is cached (summary_view.py).

Everything shown here that comes from a document, a file name or the model goes through
literal.py (no Markdown, no HTML); the original of a document is offered only through
pipeline.documents.source_path, which refuses anything outside the index's folder.
"""

from __future__ import annotations

import base64
import mimetypes
from inspect import signature
from pathlib import Path
from typing import Any

import streamlit as st
import summary_view
from literal import file_name, line, snippet

from ragpipe.conversations import Message
from ragpipe.datatypes import Citation, Hit
from ragpipe.errors import RagpipeError
from ragpipe.feedback import DOWN, UP, Feedback
from ragpipe.pipeline import Pipeline
from ragpipe.pipeline.documents import source_path

# A PDF up to this size is shown in the browser's own viewer, at the cited page; larger
# ones are offered for download only (the viewer gets the file inside the page).
PDF_INLINE_BYTES = 20 * 1024 * 1024


def citation_mark(cites: list[Citation]) -> str:
    """How a passage was used by the answer, in a few words."""
    if not cites:
        return ":gray-badge[not cited]"
    if all(c.supported for c in cites):
        return ":green-badge[:material/check: cited, supported]"
    if any(c.supported for c in cites):
        return ":orange-badge[:material/warning: cited, partly supported]"
    return ":red-badge[:material/close: cited, not supported by this passage]"


def _local_span(hit: Hit, cites: list[Citation]) -> tuple[int, int] | None:
    """The supporting text of ``hit`` as offsets into its own text."""
    span = next((c.span for c in cites if c.supported and c.span), None)
    return (span[0] - hit.start, span[1] - hit.start) if span else None


def answer_caption(m: Message) -> None:
    """The support line of a saved answer, and how long it waited for the model."""
    d, s = m.detail, m.detail.get("support", {})
    if m.found is False and d.get("abstain_reason") in ("unsupported", "uncertain"):
        st.caption("The draft answer was withheld: the passages do not support it well "
                   f"enough (confidence {s.get('confidence') or 0:.2f}).")
    elif s.get("confidence") is not None:
        st.caption(f"Support: {s.get('supported', 0)}/{s.get('citations', 0)} citations "
                   f"supported · confidence {s['confidence']:.2f}")
    for note in d.get("degraded", []):  # what this answer model's backend cannot do
        st.caption(f"Note: {note}.")
    if d.get("ahead"):
        st.caption(f"Waited {d.get('waited_s', 0):.0f} s for the model "
                   f"({d['ahead']} question(s) ahead).")


def show_sources(pipe: Pipeline, m: Message, expanded: bool) -> None:
    """Numbered chips that open each source, and the passages listed for checking."""
    hits, by_n = m.hits, {}
    for c in m.citations:
        by_n.setdefault(c.n, []).append(c)
    if not hits:
        return
    cols = st.columns(min(len(hits), 4))
    for i, hit in enumerate(hits, start=1):
        with cols[(i - 1) % len(cols)]:
            if st.button(f"[{i}] {file_name(hit.location)}", key=f"src-{m.id}-{i}",
                         help="Open this source: its passage and the original file"):
                source_dialog(pipe, i, hit, by_n.get(i, []))
    title = "Sources" if m.found else "Closest passages"
    with st.expander(f"{title} ({len(hits)})", expanded=expanded):
        for i, hit in enumerate(hits, start=1):
            cites = by_n.get(i, [])
            st.markdown(f"**[{i}] {file_name(hit.location)}** · score {hit.score:.2f} · "
                        f"{citation_mark(cites)}")
            st.caption(snippet(hit.text, _local_span(hit, cites)))


@st.dialog("Source", width="large")
def source_dialog(pipe: Pipeline, n: int, hit: Hit, cites: list[Citation]) -> None:
    """One source: file, page, the whole passage with its supporting text, the original."""
    st.markdown(f"**[{n}] {file_name(hit.source)}**")
    where = f"page {hit.page}" if hit.page is not None else "one page"
    st.markdown(f"{where} · {citation_mark(cites)}")
    # the whole passage (snippet keeps a third of its limit before the span)
    st.markdown(snippet(hit.text, _local_span(hit, cites), limit=3 * len(hit.text) + 3))
    summary_view.in_source(pipe, hit.source, key=str(hit.chunk_id))  # the cached summary
    show_original(pipe, hit)


def show_original(pipe: Pipeline, hit: Hit) -> None:
    """The original file: a PDF in the browser's viewer at the page, and a download."""
    try:
        path = source_path(pipe, hit.source)
        data = path.read_bytes()
    except (RagpipeError, OSError) as exc:
        st.info(f"The original cannot be opened: {line(str(exc))}")
        return
    pdf = path.suffix.lower() == ".pdf" and data[:5] == b"%PDF-"
    if pdf and len(data) <= PDF_INLINE_BYTES:
        st.iframe(_pdf_opener(data, hit.page or 1), height=56,
                  alt=f"Opens the original PDF at page {hit.page or 1}")
    mime = "application/pdf" if pdf else (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    st.download_button("Download the original", data, file_name=path.name, mime=mime,
                       on_click="ignore", key=f"orig-{hit.chunk_id}")


def _pdf_opener(data: bytes, page: int) -> str:
    """A button that opens ``data`` in the browser's PDF viewer, in a new tab, at ``page``.

    Browsers refuse a PDF inside the page's sandboxed frames and a data: URL as a tab,
    so the button makes a blob: URL of the bytes and opens that, with ``#page=N``.
    Nothing but base64 text and a number is put into this HTML.
    """
    b64 = base64.b64encode(data).decode("ascii")
    return f"""<!doctype html><html><body style="margin:0">
<button id="open" style="font:14px sans-serif;padding:6px 12px;border-radius:8px;
border:1px solid #d0d0d6;background:#fff;cursor:pointer">Open the PDF at page {int(page)}</button>
<script>
document.getElementById("open").onclick = function () {{
  var raw = atob("{b64}"), bytes = new Uint8Array(raw.length);
  for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  var url = URL.createObjectURL(new Blob([bytes], {{type: "application/pdf"}}));
  window.open(url + "#page={int(page)}", "_blank", "noopener");
}};
</script></body></html>"""


def feedback_widget(fb: Feedback, owner: str, m: Message) -> None:
    """Thumbs up or down on an answer, and an optional comment; saved as given."""
    saved = fb.rating(owner, m.id)
    key = f"fb-{m.id}"
    if key not in st.session_state and saved:
        st.session_state[key] = 1 if saved[0] == UP else 0

    def rate() -> None:
        value = st.session_state.get(key)
        if value is not None:
            fb.give(owner, m.id, UP if value == 1 else DOWN,
                    st.session_state.get(f"{key}-comment", saved[1] if saved else ""))

    st.feedback("thumbs", key=key, on_change=rate)
    if saved or st.session_state.get(key) is not None:
        with st.popover("Comment", icon=":material/comment:"):
            comment = st.text_area("What was right or wrong? (optional)",
                                   value=saved[1] if saved else "", key=f"{key}-comment")
            if st.button("Save comment", key=f"{key}-save"):
                fb.give(owner, m.id, UP if st.session_state.get(key) == 1 else DOWN, comment)
                st.toast("Feedback saved")


def model_card(spec: str, models_dir: Path) -> dict[str, Any]:
    """What is known of an answer model: ``ragpipe.models.model_card`` where it exists.

    Without it, what ragpipe's catalogue records (name, licence, file size). The file is
    not hashed for the page (seconds per gigabyte).
    """
    try:
        from ragpipe.models import model_card as library_card  # type: ignore[attr-defined]
    except ImportError:
        library_card = None
    if library_card is not None:
        quick = {"sha256": False} if "sha256" in signature(library_card).parameters else {}
        try:
            return card_rows(library_card(spec, models_dir, **quick))
        except RagpipeError as exc:
            return {"model": spec, "file": f"not ready: {exc}"}
    from ragpipe import models

    known = models.known(spec)
    card: dict[str, Any] = {"name": known.name if known else spec,
                            "licence": known.licence if known else "not recorded"}
    try:
        path = models.resolve_gguf(spec, models_dir)
        card["file"] = path.name
        card["file size"] = f"{path.stat().st_size / 1e6:,.0f} MB"
    except RagpipeError as exc:
        card["file"] = f"not ready: {exc}"
    if known and known.packages:
        card["comes in"] = known.packages
    return card


def card_rows(card: dict[str, Any]) -> dict[str, str]:
    """A library model card as label -> text: nested parts one level deep, numbers grouped.

    The file's raw ``general`` metadata is left out (long, and in the GGUF file).
    """
    rows: dict[str, str] = {}

    def text(key: str, value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int) and "size" in key:
            return f"{value / 1e6:,.0f} MB"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    for key, value in card.items():
        if key == "general":
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                rows[f"{key.replace('_', ' ')}: {sub.replace('_', ' ')}"] = text(sub, v)
        else:
            rows[key.replace("_", " ")] = text(key, value)
    return rows


def show_card(card: dict[str, Any]) -> None:
    """A model card as a two-column table (cells are text, never Markdown)."""
    st.dataframe([{"": str(k), "value": str(v)} for k, v in card.items()], hide_index=True,
                 width="stretch")
