"""Documents' summaries on the pages: shown from the cache, or made now through the line.

A summary made from a page uses the answer model through the same line as the Ask
page's questions (ragpipe.queueing), one turn per model call: a long document's
map-reduce makes many calls, and between two of them every question that joined
meanwhile has its turn, so a summary holds up a question by one call at most. The page
shows its place in line and the calls made so far; Stop (or any other click) ends it
after the piece being written, and nothing half-made is kept.

Summary text comes from a document through the model: it goes through literal.py like
answers, and sentences the check did not find in the document are marked on the page.
The Pipeline passed in (state.pipeline) is the signed-in person's, so its summaries are
only of documents they may read (access.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import state
import streamlit as st
from literal import file_name, line, snippet

from ragpipe.errors import RagpipeError
from ragpipe.pipeline import Pipeline
from ragpipe.queueing import Busy, Ticket, TurnQueue
from ragpipe.settings import Settings
from ragpipe.summarize import DocumentSummary

OPEN = "summary-open"  # (index, path) of the summary shown on the Ask page
MAKE = "summary-make"  # make it in this run when none is cached
FLAG = ":red-badge[:material/close: not supported by the document]"
SUPPORTED = ":green-badge[:material/check: supported]"
QUOTE_CHARS = 300


# ----- turns at the model -------------------------------------------------------------------
class TurnPerCall:
    """An answer model that takes one turn in ``queue`` for each call (``stream``).

    ``waiting(text)`` is called while the call waits for its turn, ``working(calls,
    pieces)`` as it writes; both draw on the page, which is where a click stops the run.
    A call's turn is left as soon as its stream is closed or fails. Before its first call
    a full line (``Busy``) is the caller's answer; after it, the summary waits for a
    place instead of losing the calls made.
    """

    def __init__(self, gen: Any, queue: TurnQueue, owner: str,
                 waiting: Callable[[str], None] = lambda text: None,
                 working: Callable[[int, int], None] = lambda calls, pieces: None) -> None:
        self._gen, self._queue, self._owner = gen, queue, owner
        self._waiting, self._working = waiting, working
        self.calls = 0  # model calls started
        self.pieces = 0  # text pieces written, all calls together
        self.waited_s = 0.0  # in line, all calls together

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gen, name)  # name, n_ctx, capabilities, count_prompt_tokens

    def _turn(self) -> Ticket:
        while True:
            try:
                ticket = self._queue.join(self._owner)
                break
            except Busy:
                if not self.calls:
                    raise
                self._waiting("The line at the model is full: waiting for a place.")
                time.sleep(0.5)
        try:
            while not ticket.wait(0.5):
                self._waiting(f"Waiting for the model: {ticket.ahead} question(s) ahead.")
        except BaseException:
            ticket.leave()
            raise
        self.waited_s += ticket.waited_s
        return ticket

    def stream(self, messages: Sequence[dict[str, str]], max_tokens: int) -> Iterator[str]:
        """The model's pieces for one call, inside one turn in line."""
        ticket = self._turn()
        inner = None
        try:
            self.calls += 1
            self._working(self.calls, self.pieces)
            inner = self._gen.stream(messages, max_tokens)
            for piece in inner:
                self.pieces += 1
                self._working(self.calls, self.pieces)
                yield piece
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()  # releases the model at once
            ticket.leave()


class _Progress:
    """What a summary being made shows: its place in line, then its calls and pieces."""

    def __init__(self) -> None:
        self.box = st.empty()
        self._drawn = 0.0

    def waiting(self, text: str) -> None:
        self.box.info(text, icon=":material/hourglass_top:")

    def working(self, calls: int, pieces: int) -> None:
        now = time.monotonic()
        if pieces and now - self._drawn < 0.3:  # a redraw per piece would slow the page
            return
        self._drawn = now
        self.box.caption(f"Model call {calls} · {pieces} pieces written")


def make(settings: Settings, index: str, owner: str, path: str) -> DocumentSummary | None:
    """Summarize ``path`` now through the line (the cached summary when there is one).

    Shows why when it cannot (a full line, the model, the document); None then.
    """
    progress = _Progress()
    stop = st.empty()
    try:
        pipe = state.pipeline(settings, index, wrap=lambda gen: TurnPerCall(
            gen, state.queue(settings), owner, progress.waiting, progress.working))
        stop.button("Stop", key="summary-stop", icon=":material/stop_circle:")
        with st.spinner(f"Summarizing {file_name(path)}…"):
            made = pipe.summarize_document(path)
    except RagpipeError as exc:
        stop.empty()
        progress.box.error(line(str(exc)))
        return None
    stop.empty()
    progress.box.empty()
    return made  # type: ignore[no-any-return]


# ----- showing one --------------------------------------------------------------------------
def marked(s: DocumentSummary, drop: bool = False) -> str:
    """The summary as page Markdown: its text as written, unsupported sentences flagged.

    With ``drop`` (summarize.unsupported = "drop") they are left out, as in its files.
    """
    parts: list[tuple[str, bool]] = []  # (text, unsupported)
    pos = 0
    for sent in s.sentences:
        i = s.draft.find(sent.text, pos)
        if i < 0:
            continue
        parts.append((s.draft[pos:i], False))
        if sent.supported or not drop:
            parts.append((sent.text, not sent.supported))
        pos = i + len(sent.text)
    parts.append((s.draft[pos:], False))
    lines: list[tuple[str, str]] = [("", "")]  # (raw, shown) of each line
    for text, bad in parts:
        for k, part in enumerate(text.split("\n")):
            if k:
                lines.append(("", ""))
            if not part.strip():
                raw, shown = lines[-1]
                lines[-1] = (raw + part, shown + (" " if part else ""))
                continue
            shown = line(part)  # every piece escaped whole: no markup across pieces
            if bad:
                shown = f":red-background[{shown}] {FLAG}"
            lead = " " if part[:1].isspace() else ""
            trail = " " if part[-1:].isspace() else ""
            raw, before = lines[-1]
            lines[-1] = (raw + part, before + lead + shown + trail)
    kept = [shown.strip() for raw, shown in lines
            if raw.strip() and raw.strip() not in ("-", "*", "\u2022")]
    return "  \n".join(kept)


def share(s: DocumentSummary) -> str:
    """The share of sentences supported, and the counts: "80% (8/10)"."""
    return f"{s.support_share:.0%} ({s.supported}/{len(s.sentences)})"


def support_line(s: DocumentSummary) -> str:
    """How much of the summary the document backs, and how it was made."""
    n = len(s.sentences)
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created)) if s.created else ""
    return (f"{s.supported}/{n} sentences supported by the document ({s.support_share:.0%}) · "
            f"{line(s.style)} · model {line(s.model)}" + (f" · made {made}" if made else ""))


def show(s: DocumentSummary, drop: bool = False, height: int | None = None) -> None:
    """A summary: its text with unsupported sentences flagged, then each sentence's sources.

    ``height``: the text scrolls in a box of that many pixels (in a dialog, above a chat).
    """
    st.caption(support_line(s))
    box = st.container(height=height, border=True) if height else st.container()
    box.markdown(marked(s, drop) or "(an empty summary)")
    with st.expander(f"Sentences and their sources ({len(s.sentences)})"):
        for n, sent in enumerate(s.sentences, start=1):
            st.markdown(f"{n}\\. {SUPPORTED if sent.supported else FLAG} {line(sent.text)}")
            if sent.problem:
                st.caption("Why: " + line(sent.problem))
            for p in sent.sources:
                where = f"page {p.page}" if p.page is not None else "the document"
                st.caption(f"{where} · {snippet(p.quote, None, QUOTE_CHARS)}")


def document_summary(settings: Settings, pipe: Pipeline, owner: str, path: str,
                     make_now: bool = False, key: str = "doc", height: int | None = None
                     ) -> None:
    """One document's summary: the cached one, else a button that makes it (or made now)."""
    drop = settings.summarize.unsupported == "drop"
    try:
        s = pipe.summary_of(path)
    except RagpipeError as exc:
        st.error(line(str(exc)))
        return
    if s is None and not make_now:
        offer = st.empty()
        with offer.container():
            st.caption("No summary of this document yet: making one takes the model a while "
                       "(questions go first between its steps).")
            make_now = st.button("Summarize this document", key=f"summarize-{key}",
                                 icon=":material/summarize:")
        if make_now:
            offer.empty()
    if s is None and make_now:
        if make(settings, pipe.index_name, owner, path) is not None:
            st.rerun()  # drawn again from the cache, with the page around it (a table)
        return
    if s is not None:
        show(s, drop, height)


# ----- the Ask page and the source view -----------------------------------------------------
def want(index: str, path: str) -> None:
    """Open the summary of ``path`` on the Ask page, made now if none is cached."""
    st.session_state[OPEN] = (index, path)
    st.session_state[MAKE] = True


def close() -> None:
    """Close the Ask page's summary."""
    st.session_state.pop(OPEN, None)
    st.session_state.pop(MAKE, None)


def is_open(index: str, path: str) -> bool:
    """Whether the Ask page shows the summary of ``path`` now."""
    return st.session_state.get(OPEN) == (index, path)


def ask_panel(settings: Settings, pipe: Pipeline, owner: str, paths: Collection[str]) -> None:
    """The summary asked for on the Ask page, while it is open (``paths``: what may be shown)."""
    opened = st.session_state.get(OPEN)
    make_now = st.session_state.pop(MAKE, False)
    if not opened:
        return
    index, path = opened
    if index != pipe.index_name or path not in paths:  # another index, or a document gone
        close()
        return
    with st.container(border=True, key="summary-panel"):
        head, shut = st.columns([5, 1], vertical_alignment="center")
        head.markdown(f"**Summary of {file_name(path)}**")
        shut.button("Close", key="summary-close", on_click=close, icon=":material/close:")
        document_summary(settings, pipe, owner, path, make_now, key="panel", height=360)


def in_source(pipe: Pipeline, path: str, key: str) -> None:
    """The source view's part: the document's cached summary, or a button that makes it."""
    try:
        s = pipe.summary_of(path)
    except RagpipeError:
        return  # the source itself is shown; its summary is not essential
    with st.container(key=f"summary-{key}"):
        if s is not None:
            st.markdown(f"**Summary of {file_name(path)}**")
            show(s, pipe.settings.summarize.unsupported == "drop", height=300)
        elif st.button("Summarize this document", key=f"summarize-src-{key}",
                       icon=":material/summarize:", on_click=want,
                       args=(pipe.index_name, path),
                       help="Shown above the conversation, made through the model's line"):
            st.rerun()  # out of the dialog: the Ask page makes and shows it
