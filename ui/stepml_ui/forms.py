"""Prediction requests built from a model's feature schema (``GET /models/{name}`` ``features``).

The UI does not second-guess the API: it sends what the user entered and shows the API's own
messages. These helpers only turn widgets and CSV rows into the JSON the API expects.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def is_required(spec: dict[str, Any]) -> bool:
    return bool(spec.get("required", True))


def label(spec: dict[str, Any]) -> str:
    """The field's label: its name, with a required mark."""
    return f"{spec['name']} *" if is_required(spec) else str(spec["name"])


def help_text(spec: dict[str, Any]) -> str:
    """What the model saw in training: the range of a number, the number of categories, the dates'
    format and range."""
    required = "required" if is_required(spec) else "optional"
    if spec.get("kind") == "date":
        fmt = "ISO 8601, e.g. 2021-01-05" if spec.get("format") == "iso8601" else f"format {spec.get('format')}"
        return (f"{required} · a date ({fmt}) · training {spec.get('earliest')} – {spec.get('latest')} · "
                f"the model takes its {', '.join(spec.get('parts') or [])}")
    if spec.get("kind") == "numeric":
        low, high = spec.get("min"), spec.get("max")
        if low is not None and high is not None:
            return f"{required} · number · training range {_number(low)} – {_number(high)}"
        return f"{required} · number"
    categories = spec.get("categories") or []
    return f"{required} · one of {len(categories)} categories seen in training (or type a new one)"


def default_value(spec: dict[str, Any]) -> Any:
    """A starting value inside the training data: the middle of the range, the first category, the
    latest date."""
    if spec.get("kind") == "date":
        return spec.get("latest") or ""
    if spec.get("kind") == "numeric":
        low, high = spec.get("min"), spec.get("max")
        if low is None or high is None:
            return 0.0
        middle = (float(low) + float(high)) / 2
        return float(round(middle)) if float(low).is_integer() and float(high).is_integer() else middle
    categories = spec.get("categories") or []
    return categories[0] if categories else ""


def record(schema: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """The request record: every required field (empty ones as null, for the API to name),
    optional fields only when filled in."""
    body: dict[str, Any] = {}
    for spec in schema:
        value = values.get(spec["name"])
        if isinstance(value, str) and not value.strip():
            value = None
        if value is None and not is_required(spec):
            continue
        body[spec["name"]] = value
    return body


def batch_records(frame: pd.DataFrame, schema: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a CSV as request records, and the columns left out because the model has no such
    feature (the target, ids…). Empty cells become absent/null; numbers stay numbers."""
    known = {spec["name"]: spec for spec in schema}
    ignored = [str(c) for c in frame.columns if c not in known]
    records = []
    for row in frame.to_dict(orient="records"):
        values: dict[str, Any] = {}
        for name, spec in known.items():
            value = row.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                values[name] = None
            elif spec.get("kind") == "numeric":
                values[name] = _json_number(value)
            else:
                values[name] = str(value)
        records.append(record(schema, values))
    return records, ignored


def _json_number(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # the API names the field: "expected a number, got str …"
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _number(value: Any) -> str:
    number = float(value)
    return f"{int(number):,}" if number.is_integer() else f"{number:,.4g}"
