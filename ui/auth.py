"""Sign-in for the web app: who is asking, before any page shows document text.

With no account (a fresh clone, `make run`) there is no sign-in: the app runs as the one
local user (an admin) and says so in the sidebar. Once `ragpipe users add NAME --admin`
has made the first account, every page first asks for a name and password
(ragpipe.accounts checks it, rate-limited), and nothing else of the page runs until it
succeeds. The session token lives in this browser session only (not in the URL, where it
would end up in history and proxy logs), so a reload asks again; sessions also end on
the server after hours without use.
"""

from __future__ import annotations

import streamlit as st

from ragpipe import accounts
from ragpipe.access import LOCAL_USER, Viewer
from ragpipe.settings import Settings

KEY = "session_token"


def gate(settings: Settings) -> Viewer:
    """The signed-in Viewer, or the sign-in form and a stop of the page run."""
    accts = accounts.for_indexes(settings.paths.indexes)
    st.session_state.pop("viewer", None)  # set again below only for a live session
    if not accts.any():
        st.session_state.pop(KEY, None)
        st.sidebar.caption("Single local user: no accounts exist, so there is no sign-in. "
                           "`ragpipe users add NAME --admin` switches it on.")
        return LOCAL_USER
    viewer = accts.session(st.session_state.get(KEY))
    if viewer is not None:
        st.sidebar.caption(f"Signed in as {viewer.name}" + (" (admin)" if viewer.admin else ""))
        if st.sidebar.button("Sign out", key="sign_out"):
            accts.sign_out(st.session_state.pop(KEY, None))
            st.rerun()
        return viewer
    st.session_state.pop(KEY, None)
    _form(accts)
    st.stop()
    raise AssertionError("st.stop() returns only in bare mode")


def _form(accts: accounts.Accounts) -> None:
    st.title("Sign in")
    with st.form("sign_in"):
        name = st.text_input("User name", key="sign_in_name", max_chars=64)
        password = st.text_input("Password", type="password", key="sign_in_password",
                                 max_chars=accounts.MAX_PASSWORD)
        submitted = st.form_submit_button("Sign in")
    if submitted:
        try:
            _, token = accts.sign_in(name.strip(), password)
        except accounts.SignInRefused as exc:
            st.error(str(exc))
            return
        st.session_state[KEY] = token
        st.rerun()
