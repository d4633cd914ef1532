"""Monitor: the champion in production, from the monitor's report and the captured requests.

Reads ``monitoring/<model>/latest.json`` (or a dated report) and the capture files under
``capture/<model>/dt=…/`` from S3 with the user's own credentials.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import streamlit as st
from stepml_ui import monitoring
from stepml_ui.client import S3ReadRefused
from stepml_ui.page import console, pick_model

st.title("Monitor")
st.caption("What the champion served, to whom, and whether today's traffic still looks like its training data.")

name = pick_model("monitor_model")
client = console()

DRIFTED = "#c62828"
CALM = "#90a4ae"
ALARM_BACKGROUND = "background-color: #ffcdd2"


@st.cache_data(ttl=30, show_spinner=False)
def report_keys(model: str) -> list[str]:
    return console().monitor_report_keys(model)


@st.cache_data(ttl=30, show_spinner=False)
def load_report(model: str, key: str | None) -> tuple[str, dict[str, Any] | None]:
    return console().monitor_report(model, key)


@st.cache_data(ttl=30, show_spinner=False)
def capture_days(model: str) -> list[Any]:
    return console().capture_days(model)


@st.cache_data(ttl=30, show_spinner="Reading captured requests…")
def load_captures(model: str, days: tuple[Any, ...]) -> monitoring.Captures:
    return console().captures(model, list(days))


def _percent(value: Any) -> str:
    return "–" if not isinstance(value, (int, float)) else f"{100 * value:.1f} %"


def _figure(value: Any, digits: int = 3) -> str:
    return "–" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


# -- the report ---------------------------------------------------------------------------------

def reload() -> None:
    for cached in (report_keys, load_report, capture_days, load_captures):
        cached.clear()


st.button("Reload", icon=":material/refresh:", on_click=reload,
          help="Read the reports and captures again (a report just produced by `stepml monitor`, new captures)")
try:
    dated = report_keys(name)
except S3ReadRefused as exc:
    st.error(f"Cannot read the monitor reports: {exc}.")
    dated = []
LATEST = "latest"
chosen_report = st.selectbox("Report", [LATEST, *dated], key=f"monitor_report:{name}",
                             format_func=lambda k: "latest" if k == LATEST else k.rsplit("/", 1)[-1])
try:
    report_key, report = load_report(name, None if chosen_report == LATEST else chosen_report)
except (monitoring.UnreadableReport, S3ReadRefused) as exc:
    st.error(f"Cannot read the monitor report: {exc}")
    report_key, report = "", None

if report is None:
    if report_key:
        st.info(f"No monitor report for **{name}** yet (`{report_key}`). Produce one with "
                f"`stepml monitor {name}` (it reads the captured traffic since the last run), or wait for "
                "the scheduled monitor run.")
else:
    window = report.get("window") or {}
    st.caption(f"`{report_key}` · generated {report.get('generated_at', '?')} · window {window.get('start', '?')} "
               f"→ {window.get('end', '?')} · champion version {report.get('champion_version', '?')}")
    alarms = [a for a in report.get("alarms") or [] if isinstance(a, dict)]
    if alarms:
        lines = "\n".join(f"- **{a.get('kind', 'alarm')}**"
                          + (f" on `{a['feature']}`" if a.get("feature") else "")
                          + f": {a.get('message') or ''} (value {_figure(a.get('value'))}, "
                            f"threshold {_figure(a.get('threshold'))})" for a in alarms)
        st.error(f"**{len(alarms)} alarm{'s' if len(alarms) != 1 else ''}** in this window\n\n{lines}",
                 icon=":material/notifications_active:")
    else:
        st.success("No alarms in this window: no feature drifted and performance held.", icon=":material/check_circle:")
    if report.get("insufficient_data"):
        st.warning("Too little traffic in this window for the drift and performance figures to mean much.")
    if report.get("note"):
        st.info(str(report["note"]))
    problems = [str(p) for p in report.get("problems") or []]
    if problems:
        with st.expander(f"The monitor skipped {len(problems)} unreadable capture or feedback entr"
                         f"{'y' if len(problems) == 1 else 'ies'}", icon=":material/warning:"):
            st.text("\n".join(problems[:50]))

    volume = report.get("volume") or {}
    latency = report.get("latency_ms") or {}
    tiles = st.columns(5)
    tiles[0].metric("Requests", f"{volume.get('requests', 0):,}")
    tiles[1].metric("Rows", f"{volume.get('rows', 0):,}")
    tiles[2].metric("Errors", f"{volume.get('errors', 0):,}")
    tiles[3].metric("Latency p50", f"{_figure(latency.get('p50'), 2)} ms")
    tiles[4].metric("Latency p99", f"{_figure(latency.get('p99'), 2)} ms")

    st.subheader("Traffic and latency")
    traffic = monitoring.traffic_frame(report)
    if traffic.empty:
        st.caption("No traffic in this window.")
    else:
        left, right = st.columns(2)
        # Errors drawn over the requests they are part of: an hour with failures shows red.
        traffic["label"] = traffic["hour"].dt.strftime("%m-%d %H:00")
        counts = traffic.assign(served=traffic["requests"] - traffic["errors"]).melt(
            id_vars=["hour", "label"], value_vars=["served", "errors"], var_name="of", value_name="count")
        left.altair_chart(alt.Chart(counts).mark_bar().encode(
            x=alt.X("label:O", title="hour (UTC)", sort=alt.EncodingSortField(field="hour"),
                    axis=alt.Axis(labelAngle=0)),
            y=alt.Y("count:Q", title="requests per hour", stack="zero"),
            color=alt.Color("of:N", title="", scale=alt.Scale(domain=["served", "errors"], range=["#1565c0", DRIFTED])),
            order=alt.Order("of:N", sort="descending"),
            tooltip=["label", "of", "count"],
        ).properties(height=240, title="Requests and errors"), width="stretch")
        latencies = traffic.melt(id_vars="hour", value_vars=["latency_p50_ms", "latency_p99_ms"], var_name="of",
                                 value_name="ms").replace({"latency_p50_ms": "p50", "latency_p99_ms": "p99"})
        right.altair_chart(alt.Chart(latencies).mark_line(point=True).encode(
            x=alt.X("hour:T", title="hour (UTC)"),
            y=alt.Y("ms:Q", title="latency (ms)"),
            color=alt.Color("of:N", title=""),
            tooltip=[alt.Tooltip("hour:T", format="%Y-%m-%d %H:00"), "of", alt.Tooltip("ms:Q", format=".2f")],
        ).properties(height=240, title="Latency"), width="stretch")

    st.subheader("Drift per feature")
    features = monitoring.features_worst_first(report)
    if not features:
        st.caption(str(report.get("note") or "The report has no per-feature figures."))
    else:
        drifted = [f["name"] for f in features if f.get("drifted")]
        st.caption(("Drifted: " + ", ".join(f"**{n}**" for n in drifted) + " · " if drifted else "No feature drifted · ")
                   + "PSI above 0.2 is usually read as a real shift; worst first.")
        table = monitoring.drift_frame(features)
        rates = ["missing (reference)", "missing (current)", "unseen categories", "out of range"]
        styled = table.style.apply(lambda row: [ALARM_BACKGROUND if row["drifted"] else ""] * len(row), axis=1)
        st.dataframe(styled, hide_index=True, key=f"drift_table:{name}", column_config={
            "psi": st.column_config.NumberColumn("psi", format="%.3f",
                                                 help="Population stability index against the training data"),
            "distance": st.column_config.NumberColumn("distance", format="%.3f"),
            **{rate: st.column_config.NumberColumn(rate, format="percent") for rate in rates}})

        shown = st.slider("Histograms to show", 1, len(features), min(6, len(features)), key=f"monitor_hist:{name}")
        grid = st.columns(2)
        prediction = report.get("prediction")
        charted = features[:shown] + ([{"name": "prediction", "kind": "prediction", **prediction}]
                                      if isinstance(prediction, dict) and prediction.get("reference") else [])
        for index, feature in enumerate(charted):
            frame = monitoring.histogram_frame(feature)
            if frame.empty:
                continue
            title = f"{feature['name']} · PSI {_figure(feature.get('psi'))}" + (" · DRIFTED" if feature.get("drifted") else "")
            chart = alt.Chart(frame).mark_bar().encode(
                x=alt.X("bin:N", sort=alt.EncodingSortField(field="order"), title=None, axis=alt.Axis(labelAngle=-40)),
                y=alt.Y("share:Q", title="share of rows", axis=alt.Axis(format="%")),
                xOffset=alt.XOffset("of:N", sort=["reference", "current"]),
                color=alt.Color("of:N", title="", scale=alt.Scale(
                    domain=["reference", "current"], range=[CALM, DRIFTED if feature.get("drifted") else "#1565c0"])),
                tooltip=["bin", "of", alt.Tooltip("share:Q", format=".1%")],
            ).properties(height=220, title=alt.TitleParams(title, color=DRIFTED if feature.get("drifted") else None))
            grid[index % 2].altair_chart(chart, width="stretch")

    st.subheader("Performance: estimated vs true")
    performance = report.get("performance") or {}
    if performance:
        metric_name = performance.get("metric", "metric")
        perf_tiles = st.columns(4)
        perf_tiles[0].metric(f"Reference {metric_name}", _figure(performance.get("reference")),
                        help="The champion's figure on its test split, at training time")
        reference = performance.get("reference")
        for tile, label, value in ((perf_tiles[1], "Estimated", performance.get("estimated")),
                                   (perf_tiles[2], "True", performance.get("true"))):
            delta = (f"{value - reference:+.3f}" if isinstance(value, (int, float)) and isinstance(reference, (int, float))
                     else None)
            tile.metric(f"{label} {metric_name}", _figure(value), delta=delta,
                        delta_color="inverse" if metric_name == "rmse" else "normal")
        perf_tiles[3].metric("Labelled rows", f"{performance.get('labelled_rows') or 0:,}",
                        help="Predictions with an actual value fed back (POST /models/{name}/feedback or a CSV "
                             "under feedback/<model>/)")
        per_version = monitoring.performance_frame(report)
        if not per_version.empty:
            kinds = ["reference (test split)", "estimated (no labels)", "true (feedback)"]
            st.altair_chart(alt.Chart(per_version.assign(version="version " + per_version["version"])).mark_bar().encode(
                x=alt.X("version:N", title=None, axis=alt.Axis(labelAngle=0)),
                y=alt.Y("value:Q", title=metric_name),
                xOffset=alt.XOffset("of:N", sort=kinds),
                color=alt.Color("of:N", title="", scale=alt.Scale(domain=kinds, range=[CALM, "#1565c0", "#2e7d32"])),
                tooltip=["version", "of", alt.Tooltip("value:Q", format=".4f"), "labelled rows"],
            ).properties(height=220), width="stretch")
        if performance.get("true") is None:
            st.caption("No labels yet: send actual values to `POST /models/{name}/feedback` with the request id "
                       "(the audit trail lists them) to see the true figure next to the estimate.")
    else:
        st.caption("The report has no performance figures.")

# -- the audit trail: captured requests ---------------------------------------------------------

st.subheader("Audit trail")
try:
    days = capture_days(name)
except S3ReadRefused as exc:
    st.error(f"Cannot read the captured requests: {exc}.")
    st.stop()
if not days:
    st.info(f"No captured requests for **{name}** under `{monitoring.capture_prefix(name)}`: capture is off for this "
            "model, or no request has reached it yet (captures arrive through the log delivery within minutes).")
    st.stop()
# Start with the report's window (its days that have captures), else the newest day.
window = (report or {}).get("window") or {}
window_start, window_end = monitoring.parse_time(window.get("start")), monitoring.parse_time(window.get("end"))
in_window = ([d for d in days if window_start.date() <= d <= window_end.date()]
             if window_start is not None and window_end is not None else [])
default_start, default_end = (in_window[0], in_window[-1]) if in_window else (days[-1], days[-1])
picked = st.date_input("Days (UTC)", value=(default_start, default_end), min_value=days[0], max_value=days[-1],
                       key=f"monitor_days:{name}")
# While a range is being picked the widget holds one day: show that day.
chosen_days = [d for d in (picked if isinstance(picked, tuple) else (picked,)) if d is not None]
first_day, last_day = (chosen_days[0], chosen_days[-1]) if chosen_days else (default_start, default_end)
try:
    loaded = load_captures(name, tuple(d for d in days if first_day <= d <= last_day))
except S3ReadRefused as exc:
    st.error(f"Cannot read the captured requests: {exc}.")
    st.stop()
for problem in loaded.problems[:10]:
    st.warning(f"Skipped: {problem}")
if len(loaded.problems) > 10:
    st.warning(f"… and {len(loaded.problems) - 10} more unreadable lines.")
if loaded.truncated:
    st.caption(f"Showing the newest {len(loaded.records):,} requests of these days; pick fewer days to see older ones.")
audit = monitoring.audit_frame(loaded.records)
if audit.empty:
    st.caption("No captured requests on these days.")
    st.stop()
hashed = monitoring.hashed_share(loaded.records)
if hashed > 0:
    which = "All these requests were" if hashed == 1 else f"{hashed:.0%} of these requests were"
    st.info(f"{which} captured in **hashed** mode: only a SHA-256 of each input row is stored, not the inputs "
            "themselves, so the audit trail shows who asked and what was answered, never what was sent.",
            icon=":material/lock:")

callers = sorted(audit["caller"].unique())
wanted = [c for c in st.query_params.get_all("caller") if c in callers]
chosen_callers = st.multiselect("Callers", callers, default=wanted, placeholder="every caller",
                                key=f"monitor_callers:{name}")
# The slider works in naive UTC datetimes (the times are all UTC).
earliest = audit["time"].min().tz_convert(None).to_pydatetime().replace(minute=0, second=0, microsecond=0)
latest = audit["time"].max().tz_convert(None).to_pydatetime().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
if latest - earliest > timedelta(hours=1):
    start, end = st.slider("Time (UTC)", min_value=earliest, max_value=latest, value=(earliest, latest),
                           step=timedelta(minutes=15), format="YYYY-MM-DD HH:mm", key=f"monitor_time:{name}")
else:
    start, end = earliest, latest
shown_audit = monitoring.filter_audit(audit, chosen_callers, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
failures = shown_audit["status"].fillna(0) >= 400
failed = int(failures.sum())
st.caption(f"{len(shown_audit):,} of {len(audit):,} captured requests · "
           f"{int(shown_audit.loc[~failures, 'rows'].sum()):,} rows answered"
           + (f" · **{failed} failed**" if failed else "") + " · newest first")


def _status_style(value: Any) -> str:
    return ALARM_BACKGROUND if isinstance(value, (int, float)) and value >= 400 else ""


st.dataframe(
    shown_audit.style.map(_status_style, subset=["status"]),
    hide_index=True, key=f"audit_table:{name}",
    column_config={"time": st.column_config.DatetimeColumn("time", format="YYYY-MM-DD HH:mm:ss.SSS"),
                   "version": st.column_config.NumberColumn("version", format="%d"),
                   "latency ms": st.column_config.NumberColumn("latency ms", format="%.2f")})
st.download_button("Download as CSV", shown_audit.to_csv(index=False).encode("utf-8"),
                   file_name=f"{name}-audit-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv", mime="text/csv")
