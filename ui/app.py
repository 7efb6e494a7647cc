"""ragpipe's web app: ask (employees); documents, index health, model card (admins).

A thin Streamlit multipage app over the library (ragpipe.pipeline and the app's stores).
It opens on the Ask page; the index picked in the sidebar is shared by every page.
Once accounts exist, every page needs a sign-in (ui/auth.py) and the admin pages are
listed for admins only.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import auth  # noqa: E402  ui/auth.py (script folder)
import state  # noqa: E402  ui/state.py (script folder)
import streamlit as st  # noqa: E402

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="ragpipe", page_icon="📄", layout="wide")
viewer = auth.gate(state.settings())  # the sign-in form and nothing else until signed in
st.session_state["viewer"] = viewer
pages = {
    "Employees": [st.Page(HERE / "app_pages" / "ask.py", title="Ask", icon=":material/chat:",
                          default=True)],
}
if viewer.admin:
    pages["Admins"] = [
        st.Page(HERE / "app_pages" / "documents.py", title="Documents",
                icon=":material/folder_open:", url_path="documents"),
        st.Page(HERE / "app_pages" / "health.py", title="Index health",
                icon=":material/monitor_heart:", url_path="health"),
        st.Page(HERE / "app_pages" / "model_card.py", title="Model card",
                icon=":material/memory:", url_path="model"),
    ]
nav = st.navigation(pages)
state.owner()  # every page keeps the browser's token in its URL
nav.run()
