"""ragpipe's web page: a chat over one index, with the sources of every answer.

A thin Streamlit front-end over ragpipe.pipeline.Pipeline. One embedder and
one answer model are shared by every browser session of the server process
(st.cache_resource); the model's own lock serializes generations.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import streamlit as st  # noqa: E402
from literal import file_name, literal, snippet  # noqa: E402  ui/literal.py (script folder)

from ragpipe.embedding import SentenceTransformerEmbedder  # noqa: E402
from ragpipe.errors import RagpipeError  # noqa: E402
from ragpipe.pipeline import Pipeline, build_generator  # noqa: E402
from ragpipe.safety import StreamGuard  # noqa: E402
from ragpipe.settings import Settings, load_settings  # noqa: E402
from ragpipe.store import Store  # noqa: E402

st.set_page_config(page_title="ragpipe", page_icon="📄", layout="wide")


@st.cache_resource(show_spinner="Loading the embedding model…")
def shared_embedder(model: str, batch_size: int, max_tokens: int) -> SentenceTransformerEmbedder:
    """One embedder per process, shared by every session."""
    return SentenceTransformerEmbedder(model, batch_size, max_tokens)


@st.cache_resource(show_spinner=False)
def shared_generator(key: str, _settings: Settings):
    """One answer model per process and ``key`` (the llm settings), shared by all sessions.

    An in-process model's lock serializes generations across sessions.
    """
    return build_generator(_settings)


@st.cache_resource(show_spinner=False)
def shared_store(path: str) -> Store:
    """One Store per index folder, so its loaded FAISS generation is reused."""
    return Store(Path(path))


def pipeline(settings: Settings, index: str) -> Pipeline:
    """A Pipeline over the shared components (cheap: built on every rerun)."""
    e = settings.embedder
    generator = None
    try:
        generator = shared_generator(f"{settings.llm!r} {settings.paths.models}", settings)
    except RagpipeError:
        pass  # the Pipeline raises it again, with its message, when a question is asked
    return Pipeline(
        settings,
        index,
        embedder=shared_embedder(e.model, e.batch_size, e.max_tokens),
        generator=generator,
        store=shared_store(str(settings.index_dir(index))),
    )


def index_names(settings: Settings) -> list[str]:
    """Indexes that exist under the configured indexes folder."""
    root = settings.paths.indexes
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "index.sqlite").is_file())


def show_sources(answer_hits, citations=(), found: bool = True) -> None:
    """List the passages given to the model, cited ones marked supported or not.

    The text that supports a citation is highlighted in its passage.
    """
    if not answer_hits:
        return
    by_n: dict[int, list] = {}
    for c in citations:
        by_n.setdefault(c.n, []).append(c)
    title = "Sources" if found else "Closest passages"
    with st.expander(f"{title} ({len(answer_hits)})", expanded=True):
        for i, hit in enumerate(answer_hits, start=1):
            cites = by_n.get(i, [])
            if not cites:
                mark = "not cited"
            elif all(c.supported for c in cites):
                mark = "✅ cited, supported"
            elif any(c.supported for c in cites):
                mark = "⚠️ cited, partly supported"
            else:
                mark = "❌ cited, not supported by this passage"
            st.markdown(f"**[{i}] {file_name(hit.location)}** · score {hit.score:.2f} · {mark}")
            span = next((c.span for c in cites if c.supported and c.span), None)
            local = (span[0] - hit.start, span[1] - hit.start) if span else None
            st.caption(snippet(hit.text, local))


st.title("Ask your documents")
settings = load_settings()
names = index_names(settings)
with st.sidebar:
    st.header("Index")
    if not names:
        st.warning("No index yet. Build one with `ragpipe ingest FOLDER`.")
        st.stop()
    default = names.index("default") if "default" in names else 0
    index = st.selectbox("Index", names, index=default, key="index")
    if st.button("Clear chat"):
        st.session_state.messages = []
    try:
        stats = pipeline(settings, index).store.stats()
    except RagpipeError as exc:  # e.g. a damaged index: its one line, not a traceback
        st.error(str(exc))
        st.stop()
    st.caption(f"{stats['files']} files · {stats['chunks']} passages · generation "
               f"{stats['generation']}")

if st.session_state.get("chat_index") != index:
    st.session_state.messages = []
    st.session_state.chat_index = index
messages = st.session_state.setdefault("messages", [])

for msg in messages:
    with st.chat_message(msg["role"]):
        st.markdown(literal(msg["content"]))
        if msg["role"] == "assistant":
            show_sources(msg.get("hits", ()), msg.get("citations", ()), msg.get("found", True))

question = st.chat_input("Ask a question about the documents")
if question:
    messages.append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(literal(question))
    with st.chat_message("assistant"):
        pipe = pipeline(settings, index)
        # Earlier turns, so a follow-up ("and for contractors?") is understood.
        history = [{"role": m["role"], "content": m["content"]} for m in messages[:-1]
                   if not m["content"].startswith("⚠️")]
        try:
            with st.spinner("Searching…"):
                stream = pipe.stream(question, history)
            # Streamed as written too (st.write_stream would render it as Markdown).
            # Links and markup are neutralized as the text streams, as in the checked answer.
            shown, so_far, guard = st.empty(), "", StreamGuard([h.text for h in stream.hits])
            for piece in stream:
                so_far += guard.feed(piece)
                shown.markdown(literal(so_far) + " ▌")
            answer = stream.answer
            # The checked answer replaces the stream: it may differ (withheld, citations
            # removed), and text copied from a document is shown as written, not as Markdown.
            shown.markdown(literal(answer.text))
            s = answer.support
            if not answer.found and answer.withheld:
                st.caption("The draft answer was withheld: the passages do not support it "
                           f"well enough (confidence {s.confidence or 0:.2f}).")
            elif s.confidence is not None:
                st.caption(f"Support: {s.verdict} · {s.supported}/{s.citations} citations "
                           f"supported · confidence {s.confidence:.2f}")
            for note in answer.degraded:  # what this answer model's backend cannot do
                st.caption(f"Note: {note}.")
            # With "not found", the closest passages include those not given to the model.
            shown_hits = answer.hits + (() if answer.found else answer.also_retrieved)
            show_sources(shown_hits, answer.citations, answer.found)
            if answer.dropped:
                st.caption(f"{len(answer.dropped)} more passage(s) did not fit the model's "
                           "context window and were left out.")
            messages.append({"role": "assistant", "content": answer.text,
                             "hits": shown_hits, "citations": answer.citations,
                             "found": answer.found})
        except RagpipeError as exc:
            st.error(str(exc))
            messages.append({"role": "assistant", "content": f"⚠️ {exc}"})
