"""Ask: saved conversations over an index, scoped questions, sources, feedback, summaries.

The conversation on screen is the one named in the URL (``?c=``), so a reload or a
restarted server shows it again; answers are stored as they finish and the page is
drawn from what is stored. A question waits in line for the answer model
(ragpipe.queueing) and shows its place; Stop (or any other click) ends the answer, and
nothing half-checked is kept. With one document chosen (or from a source), "Summarize
this document" shows its cached summary, or makes one through the same line
(summary_view.py).

Everything here is what the signed-in user may read (access.folders): the Pipeline is
theirs, so the search, the scope lists, the source previews and the summaries hold only
their documents, and saved answers resting on a document they may no longer read are shown
withheld.
"""

from __future__ import annotations

import state
import streamlit as st
import summary_view
import views
from literal import line, literal

from ragpipe.conversations import Conversation, Message, settings_record
from ragpipe.errors import RagpipeError
from ragpipe.filters import folders_of, scope
from ragpipe.safety import StreamGuard

STOPPED = "Stopped before the answer was finished."

settings = state.settings()
me = state.owner()
index = state.choose_index(settings)
convs, fb = state.conversations(settings), state.feedback(settings)

st.title("Ask your documents")
if index is None:
    st.warning("No index yet. Build one with `ragpipe ingest FOLDER`, or from a folder on "
               "the Documents page.")
    st.stop()
pipe = state.pipeline(settings, index)
readable = pipe.can_read
try:
    stats = pipe.store.stats()
    files = [r for r in pipe.files() if r.outcome.has_text]  # those this user may read
except RagpipeError as exc:  # e.g. a damaged index: its one line, not a traceback
    st.error(str(exc))
    st.stop()


def open_chat(conv: Conversation | None) -> None:
    """Show ``conv`` (None: a new chat); its index becomes the chosen one."""
    if conv is None:
        st.query_params.pop("c", None)
        st.session_state.pop("chat", None)
        return
    st.query_params["c"] = st.session_state["chat"] = conv.id
    if conv.index in state.index_names(settings):
        st.session_state["index"] = conv.index


# The chat on screen: named in the URL, or kept in the session (other pages drop the URL's c).
current = convs.get(me, st.query_params.get("c") or st.session_state.get("chat", ""))
if current is not None and current.index != index:
    current = None  # another index was chosen: a new chat on it
if current is None:
    open_chat(None)
else:
    st.query_params["c"] = st.session_state["chat"] = current.id

with st.sidebar:
    if pipe.viewer.admin:
        st.caption(f"{stats['files']} files · {stats['chunks']} passages · generation "
                   f"{stats['generation']}")
    else:  # the index's own counts would say how much this user may not read
        st.caption(f"{len(files)} documents you may ask about")
    st.button("New chat", icon=":material/add:", on_click=open_chat, args=(None,),
              width="stretch", key="new-chat")
    st.subheader("Conversations")
    for conv in convs.list_for(me)[:100]:
        st.button(line(conv.title), key=f"conv-{conv.id}", on_click=open_chat, args=(conv,),
                  type="primary" if current and conv.id == current.id else "tertiary",
                  width="stretch")
    if current is not None:
        with st.expander("This chat"):
            title = st.text_input("Name", value=current.title, key=f"title-{current.id}")
            if st.button("Rename", key="rename") and title != current.title:
                try:
                    convs.rename(me, current.id, title)
                    st.rerun()
                except RagpipeError as exc:
                    st.error(str(exc))
            md = convs.markdown(me, current.id, readable)
            st.download_button("Export as Markdown", md, file_name="conversation.md",
                               mime="text/markdown", on_click="ignore", key="export")
            st.caption("Copy (the icon at the top right of the box):")
            st.code(md, language="markdown")
            if st.button("Delete this chat", key="delete", icon=":material/delete:"):
                convs.delete(me, current.id)
                open_chat(None)
                st.rerun()

# ----- scope: folders, file types, documents ---------------------------------------------------
with st.expander("Scope: which documents to ask", icon=":material/filter_alt:"):
    c1, c2 = st.columns(2)
    folders = c1.multiselect("Folders", folders_of(r.path for r in files),
                             key=f"scope-folders-{index}")
    kinds = c2.multiselect("File types", sorted({r.kind for r in files if r.kind}),
                           key=f"scope-kinds-{index}")
    choices = [r.path for r in files
               if (not folders or r.path.startswith(tuple(folders)))
               and (not kinds or r.kind in kinds)]
    chosen = st.multiselect("Documents (none chosen: all of the above)", choices,
                            key=f"scope-docs-{index}")
where = scope(folders, kinds, chosen)
scope_record = {"folders": folders, "kinds": kinds, "documents": chosen}
if where is not None:
    st.caption("Asking " + (f"{len(chosen)} chosen document(s)" if chosen else
                            ", ".join(line(x) for x in [*folders, *kinds])))
# One document chosen: its summary on request (the cached one at once, else made now).
if len(chosen) == 1 and not summary_view.is_open(index, chosen[0]):
    st.button("Summarize this document", key="summarize-scope", icon=":material/summarize:",
              on_click=summary_view.want, args=(index, chosen[0]))
summary_view.ask_panel(settings, pipe, me, {r.path for r in files})

# ----- the conversation ------------------------------------------------------------------------
def stored_turns() -> list[Message]:
    """The chat's turns, once an answer of this user that is still stopping is stored.

    A click during an answer starts a new run of this page at once (Streamlit's fast
    reruns) while the old run is still stopping; read too early, the page would show the
    question without its "Stopped" line until the next click. The old run stores that line
    before it leaves the model's line, so this run waits for it to leave.
    """
    if current is None:
        return []
    turns = convs.messages(me, current.id, readable)
    line_up = state.queue(settings)
    if turns and turns[-1].role == "user" and not line_up.wait_for_owner(me, 0):
        note = st.empty()
        while not line_up.wait_for_owner(me, 0.5):
            # each redraw lets a click end this wait, as it ends an answer
            note.caption("Finishing your previous question…")
        note.empty()
        turns = convs.messages(me, current.id, readable)
    return turns


messages = stored_turns()
last_answer = max((m.id for m in messages if m.role == "assistant"), default=None)
for m in messages:
    with st.chat_message(m.role):
        if m.role == "user":
            st.markdown(literal(m.content))
        elif m.found is None:
            st.markdown(literal("⚠️ " + m.content))
        else:
            st.markdown(literal(m.content))
            views.answer_caption(m)
            views.show_sources(pipe, m, expanded=m.id == last_answer)
            views.feedback_widget(fb, me, m)


def answer(question: str, history: list[dict], cid: str) -> None:
    """Wait for the model, stream the answer, then store it (or why there is none)."""
    audit, who, model = state.audit(settings), state.viewer().name, settings.llm.model
    try:
        ticket = state.queue(settings).join(me)
    except RagpipeError as exc:  # Busy: the line is full, or this user's last question runs
        audit.record(who, index, (), convs.add_error(me, cid, question, str(exc)), model, "busy")
        return
    status = st.empty()
    st.button("Stop", key="stop", icon=":material/stop_circle:")  # a click ends this run
    shown = st.empty()
    pieces = stream = None
    try:
        while not ticket.wait(0.5):
            status.info(f"Waiting for the model: {ticket.ahead} question(s) ahead of yours.",
                        icon=":material/hourglass_top:")
        status.empty()
        with st.spinner("Searching…"):
            stream = pipe.stream(question, history, where)
        # Links and markup are neutralized as the text streams, as in the checked answer.
        so_far, guard = "", StreamGuard([h.text for h in stream.hits])
        pieces = iter(stream)
        for piece in pieces:
            so_far += guard.feed(piece)
            shown.markdown(literal(so_far) + " ▌")
        ans = stream.answer
    except RagpipeError as exc:
        audit.record(who, index, stream.hits if stream else (),
                     convs.add_error(me, cid, question, str(exc)), model, "failed")
        return
    except BaseException:  # Stop, another click, or the page went away
        audit.record(who, index, stream.hits if stream else (),
                     convs.add_error(me, cid, question, STOPPED), model, "stopped")
        raise
    finally:
        if pieces is not None:
            pieces.close()  # releases the model at once
        ticket.leave()
    # With "not found", the closest passages include those not given to the model.
    shown_hits = ans.hits + (() if ans.found else ans.also_retrieved)
    answer_id = convs.add_answer(me, cid, ans, shown_hits, model=settings.llm.model,
                                 settings=settings_record(settings), scope=scope_record,
                                 waited_s=round(ticket.waited_s, 1), ahead=ticket.most_ahead)
    audit.record(who, index, ans.hits + ans.also_retrieved, answer_id, model,
                 "answered" if ans.found else "not_found")


question = st.chat_input("Ask a question about the documents")
if question:
    if current is None:
        current = convs.get(me, convs.create(me, index))
        assert current is not None
        st.query_params["c"] = st.session_state["chat"] = current.id
    history = convs.history(me, current.id, readable=readable)
    convs.add_question(me, current.id, question)
    with st.chat_message("user"):
        st.markdown(literal(question))
    with st.chat_message("assistant"):
        answer(question, history, current.id)
    st.rerun()
