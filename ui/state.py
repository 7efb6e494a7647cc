"""What every page of the web app shares: settings, loaded models, the chosen index, who asks.

One embedder, one answer model (with its line of waiting questions), one Store per
index and one background-sync runner are shared by every browser session of the server
process (st.cache_resource). Who asks is a random token in the page's URL (``?u=``):
Streamlit has no cookies it can set, and a token in the URL survives a reload and a
restart of the server, where session state does not. It is 128 random bits, so it
cannot be guessed; anyone given the full URL sees its conversations, which on a page
bound to 127.0.0.1 is the person at the machine. Sign-in, when it exists, replaces it.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import streamlit as st  # noqa: E402

from ragpipe import accounts, appstate  # noqa: E402
from ragpipe.access import LOCAL_USER, Viewer  # noqa: E402
from ragpipe.audit import Audit  # noqa: E402
from ragpipe.conversations import Conversations, new_owner, valid_owner  # noqa: E402
from ragpipe.embedding import SentenceTransformerEmbedder  # noqa: E402
from ragpipe.errors import RagpipeError  # noqa: E402
from ragpipe.feedback import Feedback  # noqa: E402
from ragpipe.generation import Generator  # noqa: E402
from ragpipe.jobs import SyncJobs  # noqa: E402
from ragpipe.pipeline import Pipeline, build_generator  # noqa: E402
from ragpipe.queueing import TurnQueue  # noqa: E402
from ragpipe.settings import Settings, load_settings  # noqa: E402
from ragpipe.store import Store  # noqa: E402


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
def shared_queue(model: str, limit: int, slots: int) -> TurnQueue:
    """The line of questions waiting for the answer model ``model``."""
    return TurnQueue(limit=limit, slots=slots)


@st.cache_resource(show_spinner=False)
def shared_store(path: str) -> Store:
    """One Store per index folder, so its loaded FAISS generation is reused."""
    return Store(Path(path))


@st.cache_resource(show_spinner=False)
def shared_jobs(indexes: str) -> SyncJobs:
    """The background syncs of this server process (their rows are in the app database)."""
    # Syncs are started by admins and run outside any page, as the local admin.
    return SyncJobs(appstate.db_path(Path(indexes)),
                    lambda index: pipeline(load_settings(), index, LOCAL_USER))


def settings() -> Settings:
    """The settings, read on every run (cheap); a bad setting stops the page with its line."""
    try:
        return load_settings()
    except RagpipeError as exc:
        st.error(str(exc))
        st.stop()
        raise


def pipeline(settings: Settings, index: str, who: Viewer | None = None,
             wrap: Callable[[Generator], Generator] | None = None) -> Pipeline:
    """A Pipeline over the shared components for ``who`` (default: ``viewer()``).

    Cheap: built on every rerun. It searches, opens and summarizes only what ``who`` may
    read (access.folders, read again with the settings on every run). ``wrap`` puts
    something around the shared answer model for this Pipeline only (a summary's turns in
    line, summary_view.py); the model's error is raised at once then.
    """
    e = settings.embedder
    generator = None
    key = f"{settings.llm!r} {settings.paths.models}"
    if wrap is not None:
        generator = wrap(shared_generator(key, settings))
    else:
        try:
            generator = shared_generator(key, settings)
        except RagpipeError:
            pass  # the Pipeline raises it again, with its message, when a question is asked
    return Pipeline(
        settings,
        index,
        embedder=shared_embedder(e.model, e.batch_size, e.max_tokens),
        generator=generator,
        store=shared_store(str(settings.index_dir(index))),
        viewer=viewer() if who is None else who,
    )


def queue(settings: Settings) -> TurnQueue:
    """The line at the configured answer model (one turn at a time in-process)."""
    slots = settings.llm.slots if settings.llm.backend == "openai" else 1
    return shared_queue(settings.llm.model, settings.server.queue_limit, slots)


def jobs(settings: Settings) -> SyncJobs:
    """The background syncs."""
    return shared_jobs(str(settings.paths.indexes))


def conversations(settings: Settings) -> Conversations:
    """The saved conversations (app database beside the indexes)."""
    return Conversations(appstate.db_path(settings.paths.indexes))


def audit(settings: Settings) -> Audit:
    """The audit log (a row per question, no text) of this server."""
    return Audit(appstate.db_path(settings.paths.indexes))


def feedback(settings: Settings) -> Feedback:
    """The ratings of answers."""
    return Feedback(appstate.db_path(settings.paths.indexes))


def index_names(settings: Settings) -> list[str]:
    """Indexes that exist under the configured indexes folder."""
    root = settings.paths.indexes
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if not p.name.startswith(".") and (p / "index.sqlite").is_file())


def viewer() -> Viewer:
    """Who is asking: the signed-in user (app.py's sign-in gate), or the one local user.

    Fails closed: a page run without a signed-in user while accounts exist (not through
    app.py's gate) stops here, before anything of a document is read.
    """
    found = st.session_state.get("viewer")
    if isinstance(found, Viewer):
        return found
    if accounts.for_indexes(settings().paths.indexes).any():
        st.error("Sign in first.")
        st.stop()
    return LOCAL_USER


def require_admin() -> Viewer:
    """The viewer, if an admin; otherwise the page says so and stops."""
    who = viewer()
    if not who.admin:
        st.error("This page is for admins only.")
        st.stop()
    return who


def owner() -> str:
    """Whose conversations: the signed-in user's, or without accounts this browser's.

    A browser's token comes from the URL, made (and put in the URL) if missing; it is
    kept in the session too, and put back into the URL on every page, because moving
    to another page of the app drops the URL's parameters. A signed-in user's
    conversations follow the account to any browser.
    """
    who = viewer()
    if who != LOCAL_USER:
        return f"user:{who.name}"
    token = st.query_params.get("u")
    if not valid_owner(token):
        kept = st.session_state.get("owner")
        token = kept if valid_owner(kept) else new_owner()
        st.query_params["u"] = token
    st.session_state["owner"] = token
    return token


def choose_index(settings: Settings) -> str | None:
    """The sidebar's index picker, shared by every page; None when there is no index."""
    names = index_names(settings)
    if not names:
        return None
    if st.session_state.get("want-index") in names:  # an index just made on a page
        st.session_state["index"] = st.session_state.pop("want-index")
    wanted = st.session_state.get("index")
    if wanted not in names:
        st.session_state["index"] = "default" if "default" in names else names[0]
    return st.sidebar.selectbox("Index", names, key="index")
