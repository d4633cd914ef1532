"""Models: the registry's versions side by side, the gate's decisions, lineage, promote/rollback."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from stepml_ui import choice
from stepml_ui.client import ApiResponse
from stepml_ui.page import console, pick_model

from stepml.contracts import AutoChoiceSummary
from stepml.describe import describe_auto_choice, describe_tuning

st.title("Models")
st.caption("Every successful run registers a version; the quality gate decides which one is champion.")

name = pick_model("models_model")
client = console()


@st.cache_data(ttl=300, show_spinner=False)
def gate_of(execution_arn: str | None) -> dict[str, Any] | None:
    """The gate's verdict from the run that registered a version (its execution output)."""
    if not execution_arn:
        return None
    output = console().execution_output(execution_arn) or {}
    gate = output.get("gate") if isinstance(output, dict) else None
    return gate if isinstance(gate, dict) else None


versions_answer = client.versions(name, with_lineage=True)
history_answer = client.history(name)
if not versions_answer.ok:
    st.error(f"GET /models/{name}/versions: {versions_answer.message}")
    st.stop()
versions: list[dict[str, Any]] = versions_answer.body.get("versions", [])
history = history_answer.body if history_answer.ok else {}
champion = history.get("version")

for message in st.session_state.pop("registry_messages", []):
    (st.success if message[0] == "ok" else st.error)(message[1])

first, second, third = st.columns(3)
first.metric("Champion", f"version {champion}" if champion else "none")
second.metric("Versions", len(versions))
latest = versions[-1] if versions else {}
primary = (latest.get("evaluation") or {}).get("primary_metric", "")
latest_value = ((latest.get("evaluation") or {}).get("metrics") or {}).get(primary)
third.metric(f"Latest version {latest.get('version', '')}",
             f"{primary} {latest_value:.3f}" if isinstance(latest_value, (int, float)) else "-")


def gate_text(meta: dict[str, Any]) -> str:
    gate = meta.get("gate") or gate_of((meta.get("lineage") or {}).get("execution_arn"))
    if not gate:
        return ""
    verdict = "passed" if gate.get("passed") else "failed"
    return f"{verdict}: {gate.get('reason', '')}"


rows = []
for meta in reversed(versions):
    evaluation = meta.get("evaluation") or {}
    metric = evaluation.get("primary_metric")
    lineage = meta.get("lineage") or {}
    rows.append({
        "version": meta["version"],
        "aliases": ", ".join(meta.get("aliases") or []),
        "registered": meta.get("registered"),
        metric or "primary": (evaluation.get("metrics") or {}).get(metric),
        "baseline": (evaluation.get("baseline") or {}).get(metric),
        "model": choice.summary(meta.get("auto_choice")) or choice.tuned_summary(meta.get("tuning")),
        "train rows": meta.get("train_rows"),
        "test rows": meta.get("test_rows"),
        "gate": gate_text(meta),
        "upload": f"{lineage.get('key', '')} ({(lineage.get('sha256') or '')[:12]})",
        "run": lineage.get("run_id"),
    })
st.subheader("Versions")
st.dataframe(pd.DataFrame(rows), hide_index=True,
             column_config={"run": st.column_config.TextColumn("run", help="Open it on the Runs page"),
                            "model": st.column_config.TextColumn(
                                "model", help="What the auto recipe chose before its final fit (empty for other "
                                              "recipes); Side by side shows how each family scored")})

st.subheader("Promote or roll back")
promote_column, rollback_column = st.columns(2)


def _record(answer: ApiResponse, what: str) -> None:
    if answer.ok:
        body = answer.body
        text = f"{what}: champion is now version {body.get('version')} (was {body.get('previous_version')})"
        gate = body.get("gate") or {}  # promotions carry the gate's decision; rollbacks are not gated
        if gate:
            verdict = "forced past the quality gate" if body.get("forced") else "quality gate passed"
            text += f"; {verdict}: {gate.get('reason')}"
        st.session_state["registry_messages"] = [("ok", text)]
    elif answer.status == 409 and isinstance(answer.body, dict) and isinstance(answer.body.get("gate"), dict):
        text = (f"{what} refused by the quality gate: {answer.body['gate'].get('reason')}. To promote it anyway, "
                "tick \"Force past the quality gate\" and say why.")
        st.session_state["registry_messages"] = [("error", text)]
    else:
        st.session_state["registry_messages"] = [("error", f"{what} refused (HTTP {answer.status}): {answer.message}")]
    st.cache_data.clear()


def promote() -> None:
    # Read from the widgets' state, not from arguments bound when the button was drawn: a reason
    # typed just before the click is committed in this same rerun.
    version = st.session_state[f"promote_version:{name}"]
    reason = st.session_state.get(f"promote_reason:{name}") or ""
    force = bool(st.session_state.get(f"promote_force:{name}"))
    # A forced promotion's reason is the person's own (the API refuses a blank one).
    reason = reason if force else (reason or "promoted from the web UI")
    _record(console().promote(name, version, reason, force=force), f"Promote version {version}")


def rollback(reason: str) -> None:
    _record(console().rollback(name, reason or "rolled back from the web UI"), "Rolled back")


with promote_column, st.container(border=True):
    numbers = [int(m["version"]) for m in reversed(versions)]
    candidates = [v for v in numbers if v != champion] or numbers
    st.selectbox("Version to promote", candidates, key=f"promote_version:{name}")
    st.text_input("Reason", key=f"promote_reason:{name}", placeholder="why this version should serve")
    st.checkbox("Force past the quality gate", key=f"promote_force:{name}",
                        help="Promote even if the gate refuses it (a worse version); needs a reason, and the "
                             "history records it as forced, with who and why.")
    st.button("Promote to champion", type="primary", on_click=promote, key=f"promote:{name}")
with rollback_column, st.container(border=True):
    st.markdown(f"Back to the champion before version **{champion}**, as recorded in the alias history.")
    back_reason = st.text_input("Reason", key=f"rollback_reason:{name}", placeholder="what went wrong")
    st.button("Roll back", on_click=rollback, args=(back_reason,), key=f"rollback:{name}")

st.subheader("Metrics across versions")
points = []
for meta in versions:
    evaluation = meta.get("evaluation") or {}
    for source, values in (("model", evaluation.get("metrics")), ("baseline", evaluation.get("baseline"))):
        for metric, value in (values or {}).items():
            if isinstance(value, (int, float)):
                points.append({"version": meta["version"], "metric": metric, "value": value, "of": source})
if points:
    frame = pd.DataFrame(points)
    chart = alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("version:O", title="version"),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("metric:N"),
        strokeDash=alt.StrokeDash("of:N", title="", scale=alt.Scale(domain=["model", "baseline"], range=[[1, 0], [4, 3]])),
        tooltip=["version", "metric", "of", alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=280)
    st.altair_chart(chart, width="stretch")

def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if not value.is_integer() else f"{int(value):,}"
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def show_auto_choice(auto_choice: AutoChoiceSummary, evaluation: dict[str, Any]) -> None:
    """The auto recipe's choice in words, and each family's validation score, the chosen one coloured."""
    metric_name = evaluation.get("primary_metric")
    st.text(describe_auto_choice(auto_choice, metric_name))
    scores = choice.family_scores(auto_choice)
    if scores.empty:
        return
    chart = alt.Chart(scores).mark_bar().encode(
        # not stacked: stacked bars would start at zero, where families a point apart look alike
        x=alt.X("score:Q", title=choice.score_axis_title(metric_name, choice.higher_is_better(evaluation)),
                scale=alt.Scale(domain=list(choice.score_domain(scores)), nice=False), stack=None),
        y=alt.Y("family:N", title=None, sort=list(scores["family"])),
        color=alt.condition(alt.datum.chosen, alt.value("#e4572e"), alt.value("#b0bec5")),
        tooltip=["family", alt.Tooltip("score:Q", format=".4f"), "chosen"],
    ).properties(title=alt.TitleParams(choice.validation_title(auto_choice),
                                       subtitle=f"chosen: {auto_choice.get('family')} (in colour)"),
                 height=alt.Step(28))  # a row per family: a fixed height drew them as hairlines
    st.altair_chart(chart, width="stretch")


st.subheader("Side by side")
all_numbers = [int(m["version"]) for m in versions]
chosen = st.multiselect("Versions", all_numbers, default=all_numbers[-3:], key=f"compare:{name}")
by_number = {int(m["version"]): m for m in versions}
if chosen:
    table: dict[str, dict[str, Any]] = {}
    for number in chosen:
        evaluation = by_number[number].get("evaluation") or {}
        column = f"v{number}" + (" (champion)" if number == champion else "")
        for metric, value in (evaluation.get("metrics") or {}).items():
            table.setdefault(metric, {})[column] = value
            table[metric][f"baseline v{number}"] = (evaluation.get("baseline") or {}).get(metric)
        for key in ("train_rows", "test_rows", "recipe", "train_seconds"):
            table.setdefault(key.replace("_", " "), {})[column] = by_number[number].get(key)
        table.setdefault("model", {})[column] = (choice.summary(by_number[number].get("auto_choice"))
                                                 or choice.tuned_summary(by_number[number].get("tuning")))
    shown = {metric: {column: _cell(value) for column, value in values.items()} for metric, values in table.items()}
    st.dataframe(pd.DataFrame(shown).T.fillna(""), width="stretch")
    matrices = st.columns(len(chosen))
    for place, number in zip(matrices, chosen, strict=True):
        evaluation = by_number[number].get("evaluation") or {}
        matrix, labels = evaluation.get("confusion_matrix"), evaluation.get("labels")
        with place:
            if matrix and labels:
                cells = pd.DataFrame([{"actual": str(labels[i]), "predicted": str(labels[j]), "rows": count}
                                      for i, row in enumerate(matrix) for j, count in enumerate(row)])
                base = alt.Chart(cells).encode(x=alt.X("predicted:N"), y=alt.Y("actual:N"))
                heat = base.mark_rect().encode(color=alt.Color("rows:Q", scale=alt.Scale(scheme="blues"), legend=None))
                text = base.mark_text(fontSize=14).encode(text="rows:Q")
                st.altair_chart((heat + text).properties(title=f"v{number} confusion matrix (hold-out)", height=220),
                                width="stretch")
            auto_choice = by_number[number].get("auto_choice")
            if auto_choice:
                with st.expander(f"v{number}: how auto chose", expanded=True):
                    show_auto_choice(auto_choice, evaluation)
            tuning = by_number[number].get("tuning")
            if tuning:
                with st.expander(f"v{number}: what tune kept", expanded=True):
                    st.text(describe_tuning(tuning))
            with st.expander(f"v{number} lineage"):
                lineage = by_number[number].get("lineage") or {}
                st.json(lineage)
                if lineage.get("run_id"):
                    st.page_link("views/runs.py", label=f"Open run {lineage['run_id']}", icon=":material/account_tree:",
                                 query_params={"run": lineage["run_id"]})
    if len(chosen) == 2:
        diff = client.diff(name, chosen[0], chosen[1])
        if diff.ok and diff.body.get("schema"):
            st.markdown("**Schema changes**")
            st.dataframe(pd.DataFrame(diff.body["schema"]), hide_index=True)

st.subheader("Champion history")
entries = history.get("history") or []
if entries:
    rows = [{**entry, "gate": "" if not entry.get("gate") else "refused, forced" if entry.get("forced") else "passed"}
            for entry in entries]  # newest first, as the API pages it
    st.dataframe(pd.DataFrame(rows)[["time", "action", "from", "to", "actor", "gate", "reason"]], hide_index=True)
else:
    st.caption("No champion yet.")
