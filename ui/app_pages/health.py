"""Index health (admins): counts, last sync, checks, usage and the feedback export.

Usage is counted from the saved conversations on this machine; nothing is sent anywhere.
The questions answered "not found" show which documents people miss.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import state
import streamlit as st
from literal import file_name, line

from ragpipe.errors import RagpipeError

settings = state.settings()
state.require_admin()  # listed for admins only (app.py); refused here too
index = state.choose_index(settings)

st.title("Index health")
if index is None:
    st.warning("No index yet: make one on the Documents page.")
    st.stop()
pipe = state.pipeline(settings, index)
try:
    stats = pipe.store.stats()
    meta = pipe.store.meta()
    problems = pipe.store.health()
except RagpipeError as exc:  # a damaged index says so, with what to run
    st.error(str(exc))
    st.stop()

st.caption(f"Index {line(index)} · folder {file_name(meta.get('root', '?'))} · embedder "
           f"{line(meta.get('embedder', '?'))}")
cols = st.columns(4)
for col, key in zip(cols * 2, ("files", "documents", "chunks", "vectors", "failed", "stale",
                               "generation"), strict=False):
    col.metric(key.capitalize(), stats[key])
last = stats["last_sync"]
cols[3].metric("Last sync", time.strftime("%d %b %H:%M", time.localtime(last))
               if last else "never")
if problems:
    st.error("Quick check: " + line("; ".join(problems)))
else:
    st.success("Quick check: ok (database quick check, FAISS file checksum)")

if st.button("Run the full check (fsck)", icon=":material/health_and_safety:", key="fsck-run"):
    notes: list[str] = []
    try:
        found, _ = pipe.fsck(notes=notes)
    except RagpipeError as exc:
        st.error(str(exc))
    else:
        st.session_state["fsck-result"] = (time.time(), found, notes)
if "fsck-result" in st.session_state:
    when, found, notes = st.session_state["fsck-result"]
    stamp = time.strftime("%H:%M:%S", time.localtime(when))
    if found:
        st.error(f"fsck ({stamp}): {len(found)} problem(s); repair with `ragpipe fsck --repair "
                 f"--index {line(index)}`")
        for p in found:
            st.markdown("- " + line(p))
    else:
        st.success(f"fsck ({stamp}): no problems")
    for n in notes:
        st.caption(line(n))

# ----- usage ----------------------------------------------------------------------------------
st.subheader("Usage")
days = st.segmented_control("Period", [7, 30, 365], default=30, key="usage-days",
                            format_func=lambda d: f"{d} days")
usage = state.conversations(settings).usage(index, date.today() - timedelta(days=(days or 30)))
c1, c2 = st.columns(2)
c1.metric("Questions", usage.questions)
c2.metric('Answered "not found"', f"{usage.not_found_share:.0%}")
if usage.per_day:
    st.bar_chart({"questions": {d: n for d, n in usage.per_day}}, height=220)
if usage.not_found_questions:
    st.caption('Questions answered "not found": they show which documents are missing.')
    st.dataframe([{"when": w, "question": q} for w, q in usage.not_found_questions],
                 hide_index=True, width="stretch", key="not-found-table")

# ----- feedback --------------------------------------------------------------------------------
st.subheader("Feedback")
fb = state.feedback(settings)
rated = fb.all(index)
ups = sum(1 for r in rated if r["rating"] > 0)
st.caption(f"{ups} thumbs up, {len(rated) - ups} thumbs down")
if rated:
    st.dataframe([{"rating": "up" if r["rating"] > 0 else "down", "question": r["question"],
                   "answer": r["answer"], "comment": r["comment"]} for r in rated[::-1]],
                 hide_index=True, width="stretch", key="feedback-table")
    ready = st.checkbox("Only the ones ready to measure (thumbs down need key points first)",
                        key="ready-only")
    st.download_button(
        "Export as a question set (JSONL)", fb.export_jsonl(index, ready_only=ready),
        file_name=f"feedback-{index}.jsonl", mime="application/jsonl", on_click="ignore",
        key="export-feedback")
    st.caption(f"Run it: `ragpipe eval answers --dataset feedback-{line(index)}.jsonl "
               f"--index {line(index)}`")

# ----- audit log -------------------------------------------------------------------------------
st.subheader("Audit log")
log = state.audit(settings)
recent = log.rows(index=index, limit=200)
st.caption(f"Who asked, when, which documents were retrieved: {len(recent)} most recent "
           "question(s) on this index (no question or answer text is logged).")
if recent:
    st.dataframe([{"when": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["at"])),
                   "user": r["user"], "outcome": r["outcome"], "model": r["model"],
                   "documents": ", ".join(r["documents"])} for r in recent],
                 hide_index=True, width="stretch", key="audit-table")
    st.download_button("Export the audit log (JSONL)", log.export_jsonl(index=index),
                       file_name=f"audit-{index}.jsonl", mime="application/jsonl",
                       on_click="ignore", key="export-audit")
