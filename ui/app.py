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

from ragpipe.embedding import SentenceTransformerEmbedder  # noqa: E402
from ragpipe.errors import RagpipeError  # noqa: E402
from ragpipe.generation import LlamaCppGenerator  # noqa: E402
from ragpipe.models import resolve_gguf  # noqa: E402
from ragpipe.pipeline import Pipeline  # noqa: E402
from ragpipe.settings import Settings, load_settings  # noqa: E402
from ragpipe.store import Store  # noqa: E402

st.set_page_config(page_title="ragpipe", page_icon="📄", layout="wide")


@st.cache_resource(show_spinner="Loading the embedding model…")
def shared_embedder(model: str, batch_size: int, max_tokens: int) -> SentenceTransformerEmbedder:
    """One embedder per process, shared by every session."""
    return SentenceTransformerEmbedder(model, batch_size, max_tokens)


@st.cache_resource(show_spinner=False)
def shared_generator(path: str, n_ctx: int, threads: int, temperature: float, seed: int):
    """One model instance per process; its lock serializes generations across sessions."""
    return LlamaCppGenerator(Path(path), n_ctx, threads, temperature, seed)


@st.cache_resource(show_spinner=False)
def shared_store(path: str) -> Store:
    """One Store per index folder, so its loaded FAISS generation is reused."""
    return Store(Path(path))


def pipeline(settings: Settings, index: str) -> Pipeline:
    """A Pipeline over the shared components (cheap: built on every rerun)."""
    e, g = settings.embedder, settings.llm
    generator = None
    try:
        gguf = resolve_gguf(g.model, settings.paths.models)
        generator = shared_generator(str(gguf), g.n_ctx, g.threads, g.temperature, g.seed)
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


def show_sources(answer_hits, cited: set[int]) -> None:
    """List the passages given to the model, cited ones first marked."""
    if not answer_hits:
        return
    with st.expander(f"Sources ({len(answer_hits)})", expanded=True):
        for i, hit in enumerate(answer_hits, start=1):
            mark = "✅ cited" if i in cited else "not cited"
            st.markdown(f"**[{i}] {hit.location}** · score {hit.score:.2f} · {mark}")
            snippet = " ".join(hit.text.split())
            st.caption(snippet[:600] + ("…" if len(snippet) > 600 else ""))


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
    stats = pipeline(settings, index).store.stats()
    st.caption(f"{stats['files']} files · {stats['chunks']} passages · generation "
               f"{stats['generation']}")

if st.session_state.get("chat_index") != index:
    st.session_state.messages = []
    st.session_state.chat_index = index
messages = st.session_state.setdefault("messages", [])

for msg in messages:
    with st.chat_message(msg["role"]):
        st.markdown(msg["content"])
        if msg["role"] == "assistant":
            show_sources(msg.get("hits", ()), set(msg.get("cited", ())))

question = st.chat_input("Ask a question about the documents")
if question:
    messages.append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        pipe = pipeline(settings, index)
        try:
            with st.spinner("Searching…"):
                stream = pipe.stream(question)
            st.write_stream(iter(stream))
            answer = stream.answer
            cited = {c.n for c in answer.citations}
            show_sources(answer.hits, cited)
            if answer.dropped:
                st.caption(f"{len(answer.dropped)} more passage(s) did not fit the model's "
                           "context window and were left out.")
            messages.append({"role": "assistant", "content": answer.text,
                             "hits": answer.hits, "cited": sorted(cited)})
        except RagpipeError as exc:
            st.error(str(exc))
            messages.append({"role": "assistant", "content": f"⚠️ {exc}"})
