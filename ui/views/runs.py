"""Runs: recent pipeline executions, one run drawn state by state, and its validation report."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from stepml_ui.page import console, status_table
from stepml_ui.run_graph import run_dot

st.title("Runs")
st.caption("Every upload starts a Step Functions execution: validate, preprocess, train, evaluate, gate.")
client = console()

limit = st.sidebar.slider("Runs to list", 5, 100, 25, step=5)


def run_list() -> None:
    """The recent runs (redrawn every few seconds while one of them is running)."""
    runs = client.executions(limit=limit)
    if not runs:
        st.info("No runs yet: upload a CSV on the **Upload** page.")
        return
    table = pd.DataFrame([{
        "status": r["status"],
        "dataset": r["dataset"],
        "run": r["run"],
        "started": r["started"].strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(r["duration_s"], 1),
        "upload": r["key"],
    } for r in runs])
    st.dataframe(status_table(table), hide_index=True, height=min(36 * (len(table) + 1) + 4, 320))


recent = client.executions(limit=limit)
live = any(r["status"] == "RUNNING" for r in recent)
st.fragment(run_list, run_every=3 if live else None)()

names = [r["run"] for r in recent]
if not names:
    st.stop()
wanted = st.query_params.get("run")
if wanted and wanted not in names:
    names.insert(0, wanted)
picked = st.selectbox("Run", names, index=names.index(wanted) if wanted in names else 0)
st.query_params["run"] = picked


def _state_table(states: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "state": s["name"],
        "type": s["type"],
        "status": s["status"],
        "seconds": None if s["duration_s"] is None else round(s["duration_s"], 2),
        "retries": s["retries"],
        "input keys": ", ".join(s.get("input_keys") or []),
        "output keys": ", ".join(s.get("output_keys") or []),
        "error": f"{s['error']}: {s['cause']}" if s.get("error") else "",
    } for s in states])


def run_detail(run_name: str) -> None:
    """One run, redrawn while it is still running."""
    run = client.run(run_name)
    status = run["status"]
    dataset = (run.get("key") or "").split("/")[1] if (run.get("key") or "").count("/") == 2 else None
    first, second, third, fourth = st.columns(4)
    first.metric("Status", status)
    second.metric("Duration", f"{run['duration_s']:.1f} s")
    third.metric("Dataset", dataset or "-")
    fourth.metric("States", len(run["states"]))
    st.caption(f"Upload `{run.get('key')}` · started {run['started']} · `{run['arn']}`")
    # Every terminal state of the state machine has its own sentence (stepml.runs.run_outcome).
    outcome = run["outcome"]
    if outcome["outcome"] == "champion":
        st.success(outcome["summary"])
    elif outcome["outcome"] in ("candidate", "duplicate", "running"):
        st.info(outcome["summary"])
    else:
        st.error(outcome["summary"])
    graph, table = st.columns([1, 1])
    with graph:
        st.graphviz_chart(run_dot(client.definition(), run["states"]), width="stretch")
        st.caption("Green: succeeded · red: failed · blue: running · grey: not run · "
                   "bold arrows: the path this run took")
    with table:
        st.dataframe(status_table(_state_table(run["states"])), hide_index=True)
        failed = [s for s in run["states"] if s.get("error")]
        for state in failed:
            st.markdown(f":red[**{state['name']}** — {state['error']}: {state['cause']}]")
    if status != "RUNNING" and st.session_state.get("following") == run_name:
        st.session_state.pop("following")
        st.rerun()  # stop the live refresh: redraw once, statically
    report_section(dataset, run["name"])


def report_section(dataset: str | None, run_id: str) -> None:
    """The validation report the first state wrote: columns, missing values, target distribution."""
    st.subheader("Validation report")
    report = client.validation_report(dataset, run_id) if dataset else None
    if report is None:
        st.caption("No validation report for this run (it stopped before validation finished).")
        return
    target = report.get("target")
    first, second, third, fourth = st.columns(4)
    first.metric("Rows", f"{report.get('rows', 0):,}")
    second.metric("Columns", len(report.get("columns", [])))
    third.metric("Rows with missing values", f"{report.get('rows_with_missing', 0):,}")
    fourth.metric("Duplicate rows", f"{report.get('duplicate_rows', 0):,}")
    st.caption(f"Target `{target}` · task {report.get('task')}"
               + (" (inferred)" if report.get("task_inferred") else "") + f" · {report.get('source')}")
    for warning in report.get("warnings", []):
        st.warning(warning)
    columns = pd.DataFrame(report.get("columns", []))
    order = [c for c in ("name", "role", "kind", "missing", "unique") if c in columns]
    columns = columns[order + [c for c in columns.columns if c not in order]]
    left, right = st.columns(2)
    with left:
        st.markdown("**Missing values per column**")
        if not columns.empty:
            chart = alt.Chart(columns).mark_bar().encode(
                x=alt.X("missing:Q", title="missing values"),
                y=alt.Y("name:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=220)),
                color=alt.Color("role:N", scale=alt.Scale(domain=["feature", "date", "target", "dropped", "id"],
                                                          range=["#1565c0", "#00897b", "#ef6c00", "#9e9e9e",
                                                                 "#bdbdbd"])),
                tooltip=["name", "kind", "missing", "unique", "role"],
            ).properties(height=max(120, 24 * len(columns)))
            st.altair_chart(chart, width="stretch")
    with right:
        st.markdown(f"**Target distribution** (`{target}`)")
        distribution = report.get("target_distribution") or {}
        frame = pd.DataFrame({"value": list(distribution), "rows": list(distribution.values())})
        if report.get("task") == "classification" and not frame.empty:
            chart = alt.Chart(frame).mark_bar(color="#ef6c00").encode(
                x=alt.X("value:N", title=target, sort="-y"), y=alt.Y("rows:Q"), tooltip=["value", "rows"])
            st.altair_chart(chart.properties(height=260), width="stretch")
        else:
            st.dataframe(frame.rename(columns={"value": "statistic", "rows": "value"}), hide_index=True)
    st.markdown("**Columns**")
    st.dataframe(columns, hide_index=True)


if client.stack.run(picked)["status"] == "RUNNING":
    st.session_state["following"] = picked
    st.fragment(run_detail, run_every=2)(picked)
else:
    run_detail(picked)
