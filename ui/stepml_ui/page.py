"""Streamlit helpers shared by the pages: the cached client and the model picker."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from stepml.errors import StepmlError
from stepml_ui.client import Console

#: Status colours shared by tables and charts (the run graph uses the same family).
STATUS_COLOURS = {"SUCCEEDED": "#c8e6c9", "FAILED": "#ffcdd2", "RUNNING": "#bbdefb", "TIMED_OUT": "#ffcdd2",
                  "ABORTED": "#eeeeee", "NOT RUN": "#eeeeee"}


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


def pick_model(key: str) -> str:
    """A model picker shared by the pages (remembers the choice across pages and ``?model=``).

    With no registered model yet it says so and stops the page, so a page and its callbacks always
    have a model to work on."""
    names = model_names()
    if not names:
        st.info("No registered models yet: upload a CSV on the **Upload** page to train one.")
        st.stop()
    wanted = st.query_params.get("model") or st.session_state.get("model")
    index = names.index(wanted) if wanted in names else 0
    name = st.selectbox("Model", names, index=index, key=key)
    st.session_state["model"] = name
    st.query_params["model"] = name
    return name


def status_table(frame: pd.DataFrame, column: str = "status") -> Any:
    """``frame`` with its status column coloured (a Styler st.dataframe renders)."""
    def colour(value: Any) -> str:
        return f"background-color: {STATUS_COLOURS.get(str(value), 'transparent')}"

    if column not in frame:
        return frame
    numbers = {c: "{:,.2f}" for c in frame.columns if pd.api.types.is_float_dtype(frame[c])}
    return frame.style.map(colour, subset=[column]).format(numbers, na_rep="")
