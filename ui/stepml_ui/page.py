"""Streamlit helpers shared by the pages: the cached client and the model picker."""

from __future__ import annotations

import streamlit as st

from stepml.errors import StepmlError
from stepml_ui.client import Console

STATUS_ICONS = {"SUCCEEDED": "🟢", "FAILED": "🔴", "RUNNING": "🔵", "TIMED_OUT": "🔴", "ABORTED": "⚪"}


@st.cache_resource(show_spinner=False)
def _console() -> Console:
    return Console.from_environment()


def console() -> Console:
    """The client for the configured stack; stops the page with a readable error if unreachable."""
    client = _console()
    try:
        client.stack.outputs  # noqa: B018 - finding the stack is what can fail
    except StepmlError as exc:
        _console.clear()
        st.error(f"Cannot reach the stack: {exc}")
        st.stop()
    return client


@st.cache_data(ttl=10, show_spinner=False)
def model_names() -> list[str]:
    return console().model_names()


def pick_model(key: str) -> str | None:
    """A model picker shared by the pages (remembers the choice across pages and ``?model=``)."""
    names = model_names()
    if not names:
        st.info("No registered models yet: upload a CSV on the **Upload** page to train one.")
        return None
    wanted = st.query_params.get("model") or st.session_state.get("model")
    index = names.index(wanted) if wanted in names else 0
    name = st.selectbox("Model", names, index=index, key=key)
    st.session_state["model"] = name
    st.query_params["model"] = name
    return name
