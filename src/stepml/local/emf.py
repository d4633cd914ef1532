"""CloudWatch embedded metric format (EMF), offline: a function's log lines become metrics.

On AWS, CloudWatch Logs reads every log line a function writes; a JSON line with an ``_aws``
member is an EMF document, and CloudWatch turns it into metrics (the function needs no
``cloudwatch:PutMetricData`` permission). moto's CloudWatch Logs stores the lines but extracts
nothing, so the local Lambda runner hands each invocation's lines to :func:`metric_data` and puts
what it finds into moto's CloudWatch: ``aws cloudwatch get-metric-statistics`` and the template's
alarms see the metrics that the Powertools ``Metrics`` of the handlers emit.

A document CloudWatch would refuse (not an object, no namespace, a value that is not a number,
more than 100 metrics or 30 dimensions in a directive, a dimension without a value) yields no
metric here either; the line stays in the log, as it does on AWS.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

#: CloudWatch's limits on one EMF directive.
MAX_METRICS = 100
MAX_DIMENSIONS = 30
#: The units CloudWatch accepts (PutMetricData's StandardUnit).
UNITS = frozenset({
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
})


class InvalidDocument(ValueError):
    """An EMF document CloudWatch would not turn into metrics."""


def _values(document: dict[str, Any], name: str) -> list[float]:
    raw = document.get(name)
    values = raw if isinstance(raw, list) else [raw]
    if not values or len(values) > MAX_METRICS:
        raise InvalidDocument(f"metric {name!r} has {len(values)} values")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidDocument(f"metric {name!r} has the value {value!r}, not a finite number")
        out.append(float(value))
    return out


def parse(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (namespace, PutMetricData datum) pairs of one EMF document; raises InvalidDocument."""
    meta = document.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        raise InvalidDocument("no _aws.CloudWatchMetrics list")
    timestamp = meta.get("Timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise InvalidDocument("_aws.Timestamp is not an integer of milliseconds")
    when = datetime.fromtimestamp(timestamp / 1000, tz=UTC).replace(tzinfo=None)
    out: list[tuple[str, dict[str, Any]]] = []
    for directive in meta["CloudWatchMetrics"]:
        namespace = directive.get("Namespace") if isinstance(directive, dict) else None
        if not isinstance(namespace, str) or not namespace:
            raise InvalidDocument("a directive has no Namespace")
        metrics = directive.get("Metrics") or []
        dimension_sets = directive.get("Dimensions") or [[]]
        if len(metrics) > MAX_METRICS:
            raise InvalidDocument(f"{len(metrics)} metrics in one directive (at most {MAX_METRICS})")
        for names in dimension_sets:
            if not isinstance(names, list) or len(names) > MAX_DIMENSIONS:
                raise InvalidDocument(f"a dimension set is not a list of at most {MAX_DIMENSIONS} names")
            dimensions = []
            for name in names:
                value = document.get(name)
                if not isinstance(value, str) or not value:
                    raise InvalidDocument(f"dimension {name!r} has no string value")
                dimensions.append({"Name": name, "Value": value})
            for metric in metrics:
                name = metric.get("Name") if isinstance(metric, dict) else None
                if not isinstance(name, str) or not name:
                    raise InvalidDocument("a metric has no Name")
                unit = metric.get("Unit", "None")
                if unit not in UNITS:
                    raise InvalidDocument(f"metric {name!r} has the unit {unit!r}")
                datum = {"MetricName": name, "Dimensions": dimensions, "Values": _values(document, name),
                         "Unit": unit, "Timestamp": when}
                out.append((namespace, datum))
    return out


def metric_data(lines: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every metric in the EMF documents among ``lines`` (other lines and invalid documents skipped)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for line in lines:
        text = line.strip()
        if not (text.startswith("{") and '"_aws"' in text):
            continue
        try:
            document = json.loads(text)
            if isinstance(document, dict):
                out += parse(document)
        except (ValueError, TypeError, AttributeError):  # InvalidDocument is a ValueError
            continue
    return out


def publish(lines: Iterable[str], cloudwatch: Any) -> int:
    """Put the metrics of ``lines`` into a moto CloudWatch backend; returns how many were put."""
    data = metric_data(lines)
    for namespace, datum in data:
        cloudwatch.put_metric_data(namespace, [datum])
    return len(data)
