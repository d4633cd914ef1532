"""What the Monitor page shows, from the objects the monitor and the capture path leave in S3.

Pure functions (no Streamlit, no boto3): capture files into records, records into the audit table,
a monitor report's parts into chart-ready frames. The formats are issue #17's shared ones: capture
records (newline-delimited JSON, possibly gzip-compressed) under ``capture/<model>/dt=YYYY-MM-DD/``
and the monitor report at ``monitoring/<model>/latest.json`` (dated copies under ``reports/``).
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Any

import pandas as pd

from stepml import keys

#: The capture and report schema versions this page reads.
CAPTURE_SCHEMA = 1
REPORT_SCHEMA = 1
#: How a capture record without a caller (an unsigned request) is listed.
NO_CALLER = "(no caller)"
#: The audit table's columns, in order.
AUDIT_COLUMNS = ["time", "caller", "version", "rows", "outputs", "latency ms", "status", "request id", "error"]
_GZIP_MAGIC = b"\x1f\x8b"


# Where the capture path and the monitor write: stepml.keys knows the layout.
def capture_prefix(model: str) -> str:
    return keys.capture_prefix(model)


def capture_day_prefix(model: str, day: date) -> str:
    return keys.capture_day_prefix(model, day.isoformat())


def latest_report_key(model: str) -> str:
    return keys.monitoring_latest(model)


def reports_prefix(model: str) -> str:
    return keys.monitoring_reports_prefix(model)


def day_of_partition(prefix: str) -> date | None:
    """The day of a partition prefix ``capture/<model>/dt=YYYY-MM-DD/`` (None for anything else)."""
    part = prefix.rstrip("/").rsplit("/", 1)[-1]
    if not part.startswith("dt="):
        return None
    try:
        return date.fromisoformat(part[3:])
    except ValueError:
        return None


@dataclass
class Captures:
    """Capture records read from S3, and what could not be read (file and line named)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    truncated: bool = False

    def extend(self, other: Captures) -> None:
        self.records.extend(other.records)
        self.problems.extend(other.problems)


def parse_capture_file(key: str, data: bytes) -> Captures:
    """The capture records of one delivered file.

    Gzip is detected by its magic bytes (Firehose may compress). Records are JSON objects one per
    line, or written back to back (Firehose without a newline delimiter); CloudWatch Logs envelopes
    (``logEvents``, what a subscription delivers unprocessed) are opened. Objects without
    ``"stepml_capture"`` are other log lines and skipped; unreadable text and unknown schema
    versions are reported by file and line.
    """
    found = Captures()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)  # Firehose may append members: all are read
        except (OSError, EOFError) as exc:
            found.problems.append(f"{key}: not a readable gzip file ({exc})")
            return found
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        found.problems.append(f"{key}: not UTF-8 text (byte {exc.start})")
        return found
    decoder = json.JSONDecoder()
    position = 0
    line, counted = 1, 0  # the line number at ``counted``, advanced as the reader moves on

    def line_at(offset: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, offset)
        counted = offset
        return line

    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position >= len(text):
            break
        try:
            document, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            found.problems.append(f"{key} line {line_at(position)}: not JSON ({exc.msg})")
            next_line = text.find("\n", position)
            if next_line < 0:
                break
            position = next_line + 1
            continue
        at = line_at(position)
        position = end
        for record in _records_in(document):
            _take(record, key, at, found)
    return found


def _records_in(document: Any) -> list[Any]:
    if isinstance(document, dict) and isinstance(document.get("logEvents"), list):
        messages = []
        for event in document["logEvents"]:
            message = event.get("message") if isinstance(event, dict) else None
            try:
                messages.append(json.loads(message) if isinstance(message, str) else None)
            except ValueError:
                continue  # a log line that is not JSON is not a capture
        return messages
    return [document]


def _take(record: Any, key: str, line: int, found: Captures) -> None:
    if not isinstance(record, dict) or "stepml_capture" not in record:
        return
    if record["stepml_capture"] != CAPTURE_SCHEMA:
        found.problems.append(f"{key} line {line}: capture schema {record['stepml_capture']!r} is not "
                              f"{CAPTURE_SCHEMA}, the version this UI reads")
        return
    moment = parse_time(record.get("time"))
    if moment is None:
        found.problems.append(f"{key} line {line}: field 'time' is not an ISO 8601 UTC time: {record.get('time')!r}")
        return
    found.records.append({**record, "time": moment})


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``…Z`` or with an offset) as an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)  # Python 3.11+ reads a trailing Z
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def row_count(record: dict[str, Any]) -> int:
    """Rows in a captured request: its outputs, else its inputs or their hashes (a failed request
    has no outputs)."""
    for name in ("outputs", "inputs", "input_hashes"):
        value = record.get(name)
        if isinstance(value, list) and value:
            return len(value)
    return 0


def outputs_text(outputs: Any, shown: int = 3) -> str:
    """The first outputs of a request, then how many more."""
    if not isinstance(outputs, list) or not outputs:
        return ""
    text = ", ".join(_short(value) for value in outputs[:shown])
    return text + (f" … (+{len(outputs) - shown})" if len(outputs) > shown else "")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def caller_of(record: dict[str, Any]) -> str:
    caller = record.get("caller")
    return str(caller) if caller else NO_CALLER


def audit_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per captured request, newest first."""
    rows = [{
        "time": record["time"],
        "caller": caller_of(record),
        "version": record.get("version"),
        "rows": row_count(record),
        "outputs": outputs_text(record.get("outputs")),
        "latency ms": record.get("latency_ms"),
        "status": record.get("status"),
        "request id": record.get("request_id"),
        "error": record.get("error") or "",
    } for record in records]
    frame = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    if frame.empty:
        return frame
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.sort_values("time", ascending=False, kind="stable").reset_index(drop=True)


def filter_audit(frame: pd.DataFrame, callers: list[str] | None = None, start: datetime | None = None,
                 end: datetime | None = None) -> pd.DataFrame:
    """The rows of ``callers`` (all when empty/None) with ``start <= time <= end``."""
    keep = pd.Series(True, index=frame.index)
    if callers:
        keep &= frame["caller"].isin(callers)
    if start is not None:
        keep &= frame["time"] >= pd.Timestamp(start)
    if end is not None:
        keep &= frame["time"] <= pd.Timestamp(end)
    return frame[keep].reset_index(drop=True)


def hashed_share(records: list[dict[str, Any]]) -> float:
    """The share of records captured in hashed mode (their inputs are not stored)."""
    if not records:
        return 0.0
    return sum(1 for r in records if r.get("mode") == "hashed") / len(records)


# -- the monitor report -------------------------------------------------------------------------


class UnreadableReport(ValueError):
    """A monitor report that is not JSON, or not of a shape this UI reads (the message names the
    object's key and the field)."""


def check_report(key: str, report: Any) -> dict[str, Any]:
    """``report`` if it is a monitor report this page reads; else :class:`UnreadableReport`."""
    if not isinstance(report, dict):
        raise UnreadableReport(f"{key}: expected a JSON object, got {type(report).__name__}")
    if report.get("schema") != REPORT_SCHEMA:
        raise UnreadableReport(f"{key}: field 'schema' is {report.get('schema')!r}, this UI reads monitor reports "
                         f"of schema {REPORT_SCHEMA}")
    for name, kind in (("features", list), ("alarms", list), ("traffic", list), ("volume", dict)):
        if name in report and report[name] is not None and not isinstance(report[name], kind):
            raise UnreadableReport(f"{key}: field {name!r} should be a JSON {'array' if kind is list else 'object'}")
    return report


def traffic_frame(report: dict[str, Any]) -> pd.DataFrame:
    """The report's hourly traffic: hour, requests, rows, errors, latency p50/p99."""
    frame = pd.DataFrame(report.get("traffic") or [],
                         columns=["hour", "requests", "rows", "errors", "latency_p50_ms", "latency_p99_ms"])
    if not frame.empty:
        frame["hour"] = pd.to_datetime(frame["hour"], utc=True)
    return frame


def features_worst_first(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's features, drifted ones first, then by PSI (highest first)."""
    features = [f for f in report.get("features") or [] if isinstance(f, dict)]
    return sorted(features, key=lambda f: (not f.get("drifted"), -_number_or(f.get("psi"), -1.0)))


def _number_or(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else default


def drift_frame(features: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per feature: its drift figures and rates, in the order given."""
    rows = []
    for feature in features:
        missing = feature.get("missing_rate") or {}
        rows.append({
            "feature": feature.get("name"),
            "kind": feature.get("kind"),
            "drifted": bool(feature.get("drifted")),
            "psi": feature.get("psi"),
            "distance": feature.get("distance"),
            "distance name": feature.get("distance_name"),
            "missing (reference)": missing.get("reference"),
            "missing (current)": missing.get("current"),
            "unseen categories": feature.get("unseen_rate"),
            "out of range": feature.get("out_of_range_rate"),
        })
    return pd.DataFrame(rows)


def histogram_frame(feature: dict[str, Any]) -> pd.DataFrame:
    """Reference and current shares per bin (numbers) or category, for a side-by-side bar chart:
    columns ``bin``, ``order``, ``of`` (reference/current) and ``share``."""
    reference = feature.get("reference") or {}
    current = feature.get("current") or {}
    ref_freq = list(reference.get("frequencies") or [])
    cur_freq = list(current.get("frequencies") or [])
    if "edges" in reference:
        labels = bin_labels(list(reference.get("edges") or []), max(len(ref_freq), len(cur_freq)))
    else:
        categories = [str(c) for c in (reference.get("categories") or current.get("categories") or [])]
        extra = max(len(ref_freq), len(cur_freq)) - len(categories)
        labels = categories + (["(unseen)"] if extra == 1 else [f"(other {i + 1})" for i in range(extra)])
    rows = []
    for of, frequencies in (("reference", ref_freq), ("current", cur_freq)):
        for order, (label, share) in enumerate(zip(labels, frequencies, strict=False)):
            rows.append({"bin": label, "order": order, "of": of, "share": _number_or(share, 0.0)})
    return pd.DataFrame(rows, columns=["bin", "order", "of", "share"])


def bin_labels(edges: list[Any], count: int) -> list[str]:
    """Labels of ``count`` bins over ``edges``: one per pair of edges, and when there are two more
    frequencies than bins, a below-range bin first and an above-range bin last."""
    inner = [f"{_edge(low)}–{_edge(high)}" for low, high in pairwise(edges)]
    if count == len(inner):
        return inner
    if count == len(inner) + 2 and edges:
        return [f"< {_edge(edges[0])}", *inner, f"> {_edge(edges[-1])}"]
    return [*inner, *(f"bin {i + 1}" for i in range(len(inner), count))][:count]


def _edge(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        return f"{int(number):,}" if number.is_integer() else f"{number:.4g}"
    return str(value)


def performance_frame(report: dict[str, Any]) -> pd.DataFrame:
    """Estimated vs true performance per version (``version``, ``of``, ``value``, ``labelled rows``),
    with the champion's reference (test-split) figure."""
    performance = report.get("performance") or {}
    rows = []
    champion = report.get("champion_version")
    if isinstance(performance.get("reference"), (int, float)) and champion is not None:
        rows.append({"version": str(champion), "of": "reference (test split)",
                     "value": float(performance["reference"]), "labelled rows": None})
    by_version = performance.get("by_version") or {}
    for version in sorted(by_version, key=lambda v: int(v) if str(v).isdigit() else 0):
        figures = by_version[version] or {}
        for name, of in (("estimated", "estimated (no labels)"), ("true", "true (feedback)")):
            value = figures.get(name)
            if isinstance(value, (int, float)):
                rows.append({"version": str(version), "of": of, "value": float(value),
                             "labelled rows": figures.get("labelled_rows")})
    return pd.DataFrame(rows, columns=["version", "of", "value", "labelled rows"])
