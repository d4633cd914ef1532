"""Upload: drop a CSV, confirm its target and task, and follow the run it starts, live."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st
from stepml_ui.page import console, status_table
from stepml_ui.run_graph import run_dot

from stepml import keys
from stepml.config import DatasetConfig
from stepml.errors import StepmlError
from stepml.stack import FINISHED
from stepml.validation import read_table


@st.cache_data(max_entries=2, show_spinner="Reading the file…")
def _read(data: bytes, name: str) -> tuple[pd.DataFrame, list[str]]:
    """The upload as the pipeline reads it (once per file: Streamlit reruns the page on every click)."""
    return read_table(data, name)


st.title("Upload")
st.caption("A CSV under raw/<dataset>/ starts the pipeline: the dataset's name is the model's name.")
client = console()

upload = st.file_uploader("CSV with a header row", type=["csv"], key="upload_file")
if upload is None:
    st.info("Drop a CSV here. The run validates it, trains, evaluates against a baseline and, "
            "if the quality gate passes, makes it the champion the API serves.")
    st.stop()

data = upload.getvalue()
problem = keys.upload_problem(upload.name)
if problem:
    st.error(f"{upload.name} {problem}")
    st.stop()
try:
    # read as the pipeline reads it (encodings, trailing commas, duplicate names), notes included
    preview, notes = _read(data, upload.name)
    for note in notes:
        st.info(note)
except StepmlError as exc:
    st.warning(f"The run will refuse this file: {exc}")
    preview = pd.DataFrame()
st.dataframe(preview.head(8), hide_index=True)
st.caption(f"{upload.name} · {len(data):,} bytes · {len(preview.columns)} columns")

suggested = re.sub(r"[^a-z0-9_-]+", "-", upload.name.rsplit(".", 1)[0].lower()).strip("-_") or "dataset"
dataset = st.text_input("Dataset (and model) name", suggested, key="upload_dataset",
                        help="lowercase letters, digits, - and _; an existing name adds a new version")
try:
    current = client.read_config(dataset)
except StepmlError as exc:
    st.warning(f"The dataset's current config cannot be read: {exc}")
    current = DatasetConfig()
columns = [str(c) for c in preview.columns]
default_target = current.target if current.target in columns else (columns[-1] if columns else None)
left, right = st.columns(2)
target = left.selectbox("Target column", columns, index=columns.index(default_target) if default_target else None,
                        key="upload_target", help="what the model learns to predict")
tasks = ["infer from the target", "classification", "regression"]
task = right.selectbox("Task", tasks, index=tasks.index(current.task) if current.task in tasks else 0,
                       key="upload_task")
if target is not None and target in preview:
    values = preview[target]
    st.caption(f"`{target}`: {values.nunique()} distinct values in the first {len(preview)} rows, "
               f"e.g. {', '.join(map(str, values.dropna().unique()[:5]))}")

if not st.button("Upload and train", type="primary", key="upload_go"):
    st.stop()

wanted_task = None if task == tasks[0] else task
# Write the config only when the user changed it: an unchanged one stays as its owner wrote it.
changed = target != current.target or wanted_task != current.task
config = DatasetConfig.from_dict({**current.to_dict(), "target": target, "task": wanted_task}) if changed else None
since = datetime.now(UTC) - timedelta(seconds=5)
try:
    uploaded = client.upload(data, upload.name, dataset, config)
except StepmlError as exc:
    st.error(str(exc))
    st.stop()
st.success(f"Uploaded s3://{uploaded['bucket']}/{uploaded['key']} — EventBridge starts the run")

status = st.empty()
graph_slot, table_slot = st.columns([1, 1])
graph_area, table_area = graph_slot.empty(), table_slot.empty()
started = time.monotonic()
execution = None
run = None
while time.monotonic() - started < 900:
    if execution is None:
        execution = client.stack.find_execution_for(uploaded["key"], since)
        status.info(f"Waiting for the run to start… {time.monotonic() - started:.0f} s")
        if execution is None:
            time.sleep(0.5)
            continue
    run = client.run(execution["executionArn"])
    current_state = run["states"][-1]["name"] if run["states"] else "-"
    status.info(f"Run **{run['name']}**: {run['status']} · {current_state} · {run['duration_s']:.1f} s")
    graph_area.graphviz_chart(run_dot(client.definition(), run["states"]), width="stretch")
    table_area.dataframe(status_table(pd.DataFrame([{
        "state": s["name"], "status": s["status"], "seconds": s["duration_s"]} for s in run["states"]])),
        hide_index=True)
    if run["status"] in FINISHED:
        break
    time.sleep(1)

if run is None:
    status.error("No run started within 15 minutes: is the bucket's EventBridge rule deployed?")
else:
    # Every terminal state of the state machine has its own sentence (stepml.runs.run_outcome).
    outcome = run["outcome"]
    message = f"Run **{run['name']}**: {outcome['summary']}"
    if outcome["outcome"] == "champion":
        status.success(message)
    elif outcome["outcome"] in ("candidate", "duplicate"):
        status.warning(message)
    else:
        status.error(message)
    if outcome.get("version") is not None:
        st.page_link("views/models.py", label="See it on the Models page", icon=":material/inventory_2:",
                     query_params={"model": dataset})
st.page_link("views/runs.py", label="Open the run", icon=":material/account_tree:",
             query_params={"run": run["name"]} if run else {})
