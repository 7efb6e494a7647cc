"""Documents (admins): upload and sync, a new index from a folder, the ingestion report.

The report lists each document's summary (present or not, the share of its sentences
the check supports); a chosen document shows its summary, or makes one now through the
answer model's line (summary_view.py).

Syncs run in the background (ragpipe.jobs): their progress is read from the app
database, so it keeps going when this tab closes and every admin sees it.
"""

from __future__ import annotations

import time
from pathlib import Path

import state
import streamlit as st
import summary_view
from literal import file_name, line

from ragpipe.errors import RagpipeError
from ragpipe.jobs import Job
from ragpipe.pipeline import documents

settings = state.settings()
state.require_admin()  # listed for admins only (app.py); refused here too
index = state.choose_index(settings)
jobs = state.jobs(settings)

st.title("Documents")


def show_job(job: Job) -> None:
    """One sync: a progress bar with files, chunks and time left while it runs."""
    if job.running:
        total = job.files_total
        frac = job.files_done / total if total else 0.0
        eta = f" · about {job.eta_s:.0f} s left" if job.eta_s is not None else ""
        text = (f"Syncing {line(job.index)}: {job.files_done}/{total} files · {job.chunks} "
                f"chunks{eta}" if total else f"Syncing {line(job.index)}: looking for changes…")
        st.progress(frac, text=text)
        if job.cancel:
            st.caption("Cancelling: stops after the file being read.")
        elif st.button("Cancel", key=f"cancel-{job.id}", icon=":material/cancel:"):
            jobs.cancel(job.id)
            st.rerun(scope="fragment")
        return
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.finished or job.updated))
    say = {"done": st.success, "failed": st.error}.get(job.state, st.warning)
    say(f"Sync of {line(job.index)} {job.state} ({when}): {line(job.message)}")


@st.fragment(run_every=1.0)
def sync_status() -> None:
    """Syncs running now (any admin's) and the index's last one, redrawn every second.

    Only this part is redrawn (a full redraw could swallow a click elsewhere on the page);
    the documents table is read again when the page is next drawn (e.g. a tab is chosen).
    """
    for job in jobs.running():
        show_job(job)
    last = next((j for j in jobs.recent(index) if not j.running), None) if index else None
    if last is not None:
        show_job(last)


with st.container(key="sync-status"):  # one place, so what follows keeps its identity
    sync_status()

pipe = state.pipeline(settings, index) if index else None
root = None
if pipe is not None:
    try:
        root = documents.source_root(pipe)
    except RagpipeError as exc:
        st.info(str(exc))
listed, add, new = st.tabs(["Documents in the index", "Add documents",
                            "New index from a folder"], key="documents-tabs",
                           on_change="rerun")  # a chosen tab shows the index as it is now

# ----- add documents ---------------------------------------------------------------------------
with add:
    if pipe is None or root is None:
        st.info("Documents are added to an index's folder: make an index from a folder first.")
    else:
        st.caption(f"Into the folder of index {line(pipe.index_name)}: {file_name(str(root))}")
        limit = settings.ingest.max_file_mb
        # A new key after each upload empties the box for the next one.
        rounds = st.session_state.setdefault("upload-round", 0)
        uploads = st.file_uploader(
            f"Drop files here, several at once (each at most {limit:g} MB, "
            "ingest.max_file_mb)", accept_multiple_files=True,
            max_upload_size=max(1, int(limit)), key=f"uploads-{rounds}")
        folder = st.text_input("Into the subfolder (optional)", key="upload-folder")
        replace = st.checkbox("Replace files of the same name", key="upload-replace")
        if st.button("Upload and sync", icon=":material/upload:", key="upload",
                     disabled=not uploads):
            said: list[tuple[str, str]] = []
            saved = 0
            for up in uploads or []:
                try:
                    documents.save_upload(pipe, up.name, up.getvalue(), folder, replace)
                    saved += 1
                except RagpipeError as exc:
                    said.append(("error", str(exc)))
            if saved:
                try:
                    jobs.start(pipe.index_name, root)
                    said.append(("success", f"{saved} file(s) saved; syncing."))
                except RagpipeError as exc:
                    said.append(("error", str(exc)))
            st.session_state["upload-round"] = rounds + 1
            st.session_state["upload-said"] = said
            st.rerun()
        for kind, text in st.session_state.pop("upload-said", []):
            (st.error if kind == "error" else st.success)(line(text))
        if st.button("Sync the folder now", icon=":material/sync:", key="sync-now"):
            try:
                jobs.start(pipe.index_name, root)
                st.rerun()
            except RagpipeError as exc:
                st.error(str(exc))

# ----- a new index -----------------------------------------------------------------------------
with new:
    with st.form("new-index"):
        name = st.text_input("Index name", placeholder="e.g. hr", key="new-name")
        path = st.text_input("Folder on the server", placeholder="/srv/documents/hr",
                             key="new-folder")
        create = st.form_submit_button("Create and sync", icon=":material/create_new_folder:")
    if create:
        try:
            settings.index_dir(name.strip())  # refuses a bad name with its one line
            folder_path = Path(path.strip()).expanduser()
            if not path.strip() or not folder_path.is_dir():
                raise RagpipeError(f"{path.strip() or '(no folder)'} is not a folder on this "
                                   "server: give the full path of a folder")
            jobs.start(name.strip(), folder_path)
            st.session_state["want-index"] = name.strip()  # chosen once it exists
            st.rerun()
        except RagpipeError as exc:
            st.error(line(str(exc)))

# ----- the ingestion report --------------------------------------------------------------------
with listed:
    if pipe is None:
        st.info("No index yet: make one from a folder on this server (the third tab).")
        st.stop()
    try:
        reports = pipe.files()
        indexed = pipe.store.indexed_times()
    except RagpipeError as exc:
        st.error(str(exc))
        st.stop()
    outcomes = sorted({r.outcome.value for r in reports})
    shown_outcomes = st.multiselect("Outcome", outcomes, key="outcome-filter",
                                    placeholder="all outcomes")
    rows = [r for r in reports if not shown_outcomes or r.outcome.value in shown_outcomes]
    try:  # each document's current summary (batch runs, or made on a page)
        summaries = pipe.current_summaries()
    except RagpipeError as exc:
        st.caption(f"Summaries cannot be read: {line(str(exc))}")
        summaries = {}
    st.dataframe(
        [{"path": r.path, "type": r.kind, "pages": r.pages, "chunks": r.chunks,
          "outcome": r.outcome.value, "message": r.message,
          "last indexed": time.strftime("%Y-%m-%d %H:%M",
                                        time.localtime(indexed.get(r.path, 0))),
          "summary": "yes" if r.path in summaries else "no",
          "supported": summary_view.share(summaries[r.path]) if r.path in summaries else ""}
         for r in rows],
        hide_index=True, width="stretch", key="documents-table",
        column_config={"supported": st.column_config.TextColumn(
            "supported", help="Share of the summary's sentences the check found in the "
            "document")})
    st.caption(f"{len(rows)} of {len(reports)} files")
    if rows:
        target = st.selectbox("A document", [r.path for r in rows], key="doc-target")
        c1, c2 = st.columns(2)
        if c1.button("Read it again", icon=":material/refresh:", key="reread",
                     help="Read the file again now, even if unchanged (e.g. after installing "
                          "OCR)"):
            try:
                jobs.start(pipe.index_name, root or Path("."), reread=target)
                st.rerun()
            except RagpipeError as exc:
                st.error(str(exc))
        with c2.popover("Remove it", icon=":material/delete:"):
            st.write("Takes it out of the index and moves its file out of the folder, to the "
                     "app's removed folder beside the indexes (it can be put back by hand).")
            if st.button("Remove", type="primary", key="remove"):
                try:
                    kept = documents.remove(pipe, target)
                    st.session_state["removed"] = (target, str(kept) if kept else "")
                    st.rerun()
                except RagpipeError as exc:
                    st.error(line(str(exc)))
        st.subheader("Summary", anchor=False)
        summary_view.document_summary(settings, pipe, state.owner(), target, key="documents")
    if "removed" in st.session_state:
        gone, kept = st.session_state.pop("removed")
        st.success(f"Removed {file_name(gone)}" + (f"; its file is kept at {file_name(kept)}"
                                                   if kept else ""))
