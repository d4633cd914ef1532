"""stepml's web UI: predict, watch runs, compare and promote models, monitor them, upload data.

Start it with ``stepml ui`` (or ``make ui``); it reads the stack to talk to from the environment
(``STEPML_ENDPOINT_URL`` for the offline stack, ``STEPML_STACK``, ``AWS_REGION``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# Streamlit puts this folder on sys.path only for the main script's own imports; make it explicit
# so the pages import the UI's modules the same way however the app is started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stepml_ui.page import console

st.set_page_config(page_title="stepml", page_icon=":material/stairs:", layout="wide")

VIEWS = Path(__file__).resolve().parent / "views"
navigation = st.navigation([
    st.Page(VIEWS / "predict.py", title="Predict", icon=":material/online_prediction:", url_path="predict", default=True),
    st.Page(VIEWS / "runs.py", title="Runs", icon=":material/account_tree:", url_path="runs"),
    st.Page(VIEWS / "models.py", title="Models", icon=":material/inventory_2:", url_path="models"),
    st.Page(VIEWS / "monitor.py", title="Monitor", icon=":material/monitor_heart:", url_path="monitor"),
    st.Page(VIEWS / "upload.py", title="Upload", icon=":material/upload_file:", url_path="upload"),
])

with st.sidebar:
    client = console()
    st.caption(f"Stack **{client.stack.stack_name}** · {client.where}")
    st.caption(f"API {client.api_url}")

navigation.run()
