"""Predict: a form generated from the model's feature schema, and batch scoring of a CSV."""

from __future__ import annotations

import io
import json
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from stepml_ui import forms
from stepml_ui.client import ApiResponse
from stepml_ui.page import console, pick_model

#: Rows per request when scoring a CSV (the API's documented limit is 1000).
BATCH_SIZE = 500

st.title("Predict")
st.caption("Fill in a record and ask the model; the form comes from the model's own feature schema.")

name = pick_model("predict_model")
client = console()


@st.cache_data(ttl=10, show_spinner=False)
def describe(model: str, version: int | None) -> ApiResponse:
    return console().describe(model, version)


@st.cache_data(ttl=10, show_spinner=False)
def version_numbers(model: str) -> list[int]:
    answer = console().versions(model)
    return [int(v["version"]) for v in answer.body.get("versions", [])] if answer.ok else []


numbers = version_numbers(name)
version_options: list[str | int] = ["champion", *reversed(numbers)]
choice = st.selectbox("Version", version_options, key=f"predict_version_{name}",
                      format_func=lambda v: "champion (what the API serves)" if v == "champion" else f"version {v}")
pinned = None if choice == "champion" else int(choice)
described = describe(name, pinned)
if not described.ok:
    st.error(f"GET /models/{name}: {described.message}")
    st.stop()
info: dict[str, Any] = described.body
schema: list[dict[str, Any]] = info.get("features") or []
metrics = info.get("metrics") or {}
summary = " · ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, (int, float)))
st.markdown(f"**{name}** version **{info.get('version')}** · {info.get('task')} of `{info.get('target')}`"
            + (f" · {summary}" if summary else ""))

state_key = f"prediction:{name}:{choice}"


def probability_label(probability: float) -> str:
    """A probability as the chart prints it: a percentage, never a misleading "0.0%"."""
    if 0 < probability < 0.001:
        return "<0.1%"
    if 0.999 < probability < 1:
        return ">99.9%"
    return f"{probability:.1%}"


def probability_chart(probabilities: dict[str, float], prediction: str) -> alt.LayerChart | alt.FacetChart:
    """One row per class on a 0-100 % axis: a light full-width track (so a class near 0 % is still a
    visible row, not a hairline), the bar, and the value printed beside it (inside a long bar)."""
    frame = pd.DataFrame({"class": [str(c) for c in probabilities], "probability": list(probabilities.values())})
    frame["label"] = frame["probability"].map(probability_label)
    frame["track"] = 1.0
    order = list(frame.sort_values("probability", ascending=False, kind="stable")["class"])
    y = alt.Y("class:N", sort=order, title=None, axis=alt.Axis(labelLimit=240, labelFontSize=13))
    base = alt.Chart(frame).encode(y=y)
    track = base.mark_bar(color="#eceff1").encode(x=alt.X("track:Q", scale=alt.Scale(domain=[0, 1])))
    bars = base.mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", tickCount=5),
                title="probability"),
        color=alt.condition(alt.datum["class"] == prediction, alt.value("#1565c0"), alt.value("#78909c")),
        tooltip=["class", alt.Tooltip("probability:Q", format=".4f")],
    )
    outside = base.mark_text(
        align="left", dx=5, color="#263238", fontSize=13, fontWeight="bold", baseline="middle"
    ).encode(x="probability:Q", text="label:N").transform_filter(alt.datum.probability <= 0.8)
    inside = base.mark_text(
        align="right", dx=-5, color="white", fontSize=13, fontWeight="bold", baseline="middle"
    ).encode(x="probability:Q", text="label:N").transform_filter(alt.datum.probability > 0.8)
    # A height per row (Step), not in pixels: with a pixel height Streamlit's stretched layout
    # squeezed the class band to a line, every class a hairline on top of the others.
    return alt.layer(track, bars, outside, inside).properties(height=alt.Step(40), title="Class probabilities")


def show_result(answer: ApiResponse) -> None:
    """The label, the class probabilities and the version that answered."""
    body = answer.body
    prediction = (body.get("predictions") or [None])[0]
    first, second = st.columns(2)
    first.metric("Prediction", str(prediction))
    second.metric("Model version", str(body.get("version")))
    probabilities = (body.get("probabilities") or [None])[0]
    if probabilities:
        st.altair_chart(probability_chart(probabilities, str(prediction)), width="stretch")
    for warning in (body.get("warnings") or [[]])[0]:
        st.warning(warning)


def submit(raw_key: str | None = None) -> None:
    """Send the form (or the raw JSON) and keep the answer for this rerun and the next ones.

    The raw body is read from the session when the button is pressed, not bound when the button
    was drawn: a body edited and sent before the edit's rerun finished would otherwise send the
    previous text."""
    if raw_key is not None:
        raw = str(st.session_state.get(raw_key) or "")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            st.session_state[state_key] = {"sent": raw, "answer": ApiResponse(400, {"message": f"not JSON: {exc}"})}
            return
    else:
        body = forms.record(schema, {f["name"]: st.session_state.get(f"field:{name}:{f['name']}") for f in schema})
    st.session_state[state_key] = {"sent": body, "answer": console().predict(name, body, pinned)}


@st.cache_data(ttl=300, show_spinner=False)
def examples(model: str, version: int) -> pd.DataFrame | None:
    return console().held_out_rows(model, version)


held_out = examples(name, int(info["version"]))
if held_out is not None:
    held_out = held_out.dropna().reset_index(drop=True)  # complete rows make the best examples
example_key = f"example:{name}:{choice}"


def example_values(row: int | None) -> dict[str, Any]:
    """A held-out row's values (numbers as the widgets show them), else mid-range defaults."""
    if held_out is None or held_out.empty or row is None:
        return {spec["name"]: forms.default_value(spec) for spec in schema}
    record = held_out.iloc[row % len(held_out)]
    return {spec["name"]: _widget_value(spec, record.get(spec["name"])) for spec in schema}


def _widget_value(spec: dict[str, Any], value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return forms.default_value(spec)
    if spec.get("kind") == "numeric":
        number = float(value)
        return int(number) if _whole(spec) else number
    return str(value)


def _whole(spec: dict[str, Any]) -> bool:
    bounds = [spec.get("min"), spec.get("max")]
    return all(b is not None and float(b).is_integer() for b in bounds)


def fill_example(row: int | None) -> None:
    st.session_state[example_key] = row
    for field, value in example_values(row).items():
        st.session_state[f"field:{name}:{field}"] = value
    st.session_state.pop(state_key, None)


if example_key not in st.session_state:
    fill_example(0 if held_out is not None and not held_out.empty else None)

single, batch = st.tabs(["One record", "Batch CSV"])

with single:
    last = st.session_state.get(state_key)
    answer: ApiResponse | None = last["answer"] if last else None
    sent = last["sent"] if last else None
    errors = answer.field_errors() if answer is not None and not answer.ok else {}
    warnings = (answer.body.get("warnings") or [[]])[0] if answer is not None and answer.ok else []
    row = st.session_state.get(example_key)
    if held_out is not None and not held_out.empty:
        left, right = st.columns([1, 3], vertical_alignment="center")
        left.button("Next held-out example", key=f"next_example:{name}:{choice}", on_click=fill_example,
                    args=((row or 0) + 1,), help="Fill the form with a row the model was tested on")
        target = info.get("target")
        if row is not None and target in held_out.columns:
            right.caption(f"Held-out row {row % len(held_out) + 1} of {len(held_out)} · "
                          f"actual {target}: **{held_out.iloc[row % len(held_out)][target]}**")
    with st.form(f"predict_form:{name}:{choice}"):
        columns = st.columns(3)
        for index, spec in enumerate(schema):
            with columns[index % 3]:
                key = f"field:{name}:{spec['name']}"
                if spec.get("kind") == "numeric":
                    st.number_input(forms.label(spec), step=1 if _whole(spec) else None, key=key,
                                    help=forms.help_text(spec))
                elif spec.get("kind") == "date":  # sent as written; the API reads it with the format
                    st.text_input(forms.label(spec), key=key, help=forms.help_text(spec),
                                  placeholder=str(spec.get("latest") or ""))
                else:
                    options = list(spec.get("categories") or [])
                    current = st.session_state.get(key)
                    if current is not None and current not in options:
                        options.append(current)
                    st.selectbox(forms.label(spec), options, key=key, accept_new_options=True,
                                 help=forms.help_text(spec))
                for message in errors.get(spec["name"], []):
                    st.markdown(f":red[⚠ {message}]")
                for message in warnings:
                    if message.startswith(f"{spec['name']}="):
                        st.markdown(f":orange[{message}]")
        st.form_submit_button("Predict", type="primary", on_click=submit)
    if answer is not None:
        if answer.ok:
            show_result(answer)
        else:
            st.error(f"The API refused the request (HTTP {answer.status}): {answer.message}")
            unplaced = [e for e in (answer.body.get("errors") or []) if isinstance(e, dict)
                        and e.get("field") not in {s["name"] for s in schema}]
            for error in unplaced:
                st.markdown(f":red[⚠ field `{error.get('field')}`: {error.get('message')}]")
        with st.expander("Request and response"):
            st.code(json.dumps(sent, indent=2) if not isinstance(sent, str) else sent, language="json")
            st.code(json.dumps(answer.body, indent=2), language="json")
    with st.expander("Send raw JSON"):
        example = json.dumps(forms.record(schema, {f["name"]: forms.default_value(f) for f in schema}), indent=2)
        raw_key = f"raw:{name}:{choice}"
        st.text_area("Request body", example, height=240, key=raw_key)
        st.button("Send JSON", on_click=submit, kwargs={"raw_key": raw_key}, key=f"send_raw:{name}:{choice}")

with batch:
    st.caption(f"Score every row of a CSV with the model's columns; requests of {BATCH_SIZE} rows.")
    upload = st.file_uploader("CSV of records", type=["csv"], key=f"batch_file:{name}")
    if upload is not None:
        frame = pd.read_csv(upload)
        records, ignored = forms.batch_records(frame, schema)
        if ignored:
            st.info(f"Columns the model does not use are left out: {', '.join(ignored)}")
        st.write(f"{len(records):,} rows")
        if st.button(f"Score {len(records):,} rows", type="primary", key=f"score:{name}"):
            predictions: list[Any] = []
            probabilities: list[dict[str, float]] = []
            progress = st.progress(0.0)
            failed = None
            for start in range(0, len(records), BATCH_SIZE):
                chunk = records[start:start + BATCH_SIZE]
                scored = console().predict(name, {"instances": chunk}, pinned)
                if not scored.ok:
                    failed = (start, scored)
                    break
                predictions += scored.body["predictions"]
                probabilities += scored.body.get("probabilities") or []
                progress.progress(min(1.0, (start + len(chunk)) / len(records)))
            if failed is not None:
                start, scored = failed
                st.error(f"Rows {start}–{start + BATCH_SIZE - 1}: HTTP {scored.status}: {scored.message}")
            else:
                result = frame.copy()
                result["prediction"] = predictions
                for label in (probabilities[0] if probabilities else {}):
                    result[f"probability_{label}"] = [p[label] for p in probabilities]
                st.session_state[f"batch_result:{name}"] = result
    result = st.session_state.get(f"batch_result:{name}")
    if result is not None:
        st.dataframe(result.head(200), hide_index=True)
        buffer = io.StringIO()
        result.to_csv(buffer, index=False)
        st.download_button("Download predictions (CSV)", buffer.getvalue(), file_name=f"{name}-predictions.csv",
                           mime="text/csv")
