"""ragpipe's web page: a chat over one index, with the sources of every answer.

A thin Streamlit front-end over ragpipe.pipeline.Pipeline. One embedder and
one answer model are shared by every browser session of the server process
(st.cache_resource); the model's own lock serializes generations.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import streamlit as st  # noqa: E402

from ragpipe.errors import RagpipeError  # noqa: E402
from ragpipe.pipeline import Pipeline  # noqa: E402
from ragpipe.settings import load_settings  # noqa: E402

st.set_page_config(page_title="ragpipe", page_icon="📄", layout="wide")


@st.cache_resource(show_spinner=False)
def shared_pipeline(index: str) -> Pipeline:
    """One Pipeline per index, all sharing one embedder and one model instance."""
    base = _base()
    return Pipeline(base.settings, index, embedder=base.embedder, generator=base._generator)


@st.cache_resource(show_spinner="Loading models…")
def _base() -> Pipeline:
    pipe = Pipeline(load_settings())
    try:
        _ = pipe.generator  # resolve the model file once, share it
    except RagpipeError:
        pass  # reported on first question
    return pipe


def index_names() -> list[str]:
    """Indexes that exist under the configured indexes folder."""
    root = _base().settings.paths.indexes
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
names = index_names()
with st.sidebar:
    st.header("Index")
    if not names:
        st.warning("No index yet. Build one with `ragpipe ingest FOLDER`.")
        st.stop()
    default = names.index("default") if "default" in names else 0
    index = st.selectbox("Index", names, index=default, key="index")
    if st.button("Clear chat"):
        st.session_state.messages = []
    stats = shared_pipeline(index).store.stats()
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
        pipe = shared_pipeline(index)
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
