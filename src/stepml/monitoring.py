"""The monitor run: a window of captured traffic against the champion's reference profile.

:func:`run_monitor` reads the window's capture records (``capture/<model>/dt=YYYY-MM-DD/…``, JSON
lines, gzip or plain), the labels fed back for them (``feedback/<model>/…``, JSON lines or CSV),
the champion's ``profile.json`` and the dataset config's ``monitoring`` thresholds, and writes a
report (``monitoring/<model>/reports/<stamp>.json`` and ``latest.json``). :func:`build_report`
is the computation alone, on records in memory:

* per-feature drift: PSI over the reference's bins (with :data:`EPSILON` for empty bins), and a
  distance suited to the kind: Wasserstein between the binned distributions (bins at positions
  0..1, so the distance is scale-free) for numbers, Jensen-Shannon (base 2) for categories; the
  rates of unseen categories, out-of-range numbers and missing values;
* prediction drift (PSI of the champion's outputs against its test-split predictions);
* volume, latency p50/p99, hourly traffic;
* performance: for classifiers an accuracy estimated without labels, the mean of the highest class
  probability (confidence-based estimation, as NannyML's CBPE estimates accuracy), shifted by the
  gap between the test split's accuracy and confidence; the true accuracy (RMSE for regressors)
  where feedback gives labels;
* alarms, from the thresholds of :class:`stepml.config.MonitoringConfig`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from stepml import capture, cells, keys, profile
from stepml.config import MonitoringConfig, load_config
from stepml.errors import DataError, NotFoundError
from stepml.inputs import marks_missing, with_stripped_names
from stepml.storage import Store

SCHEMA = 1
#: Stands in for an empty bin's share in PSI (ln 0 is undefined).
EPSILON = 1e-4
#: How far back a run looks by default.
DEFAULT_WINDOW = timedelta(hours=24)
#: The longest window a run reads (a day's folder per day).
MAX_WINDOW = timedelta(days=31)
#: At most this many problems (unreadable lines, bad feedback rows) are listed in a report.
MAX_PROBLEMS = 20
_SINCE = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


# -- the window ---------------------------------------------------------------------------------


def parse_since(text: str, now: datetime) -> datetime:
    """The window's start: a duration back from ``now`` (``90m``, ``24h``, ``7d``) or an ISO time."""
    text = text.strip()
    match = _SINCE.match(text)
    if match:
        start = now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            start = datetime.fromisoformat(text)
        except ValueError:
            raise DataError(f"--since {text!r} is neither a duration (90m, 24h, 7d) nor an ISO time "
                            "(2026-11-26T18:00:00Z)") from None
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    if start >= now:
        raise DataError(f"--since {text!r} is not in the past")
    if now - start > MAX_WINDOW:
        raise DataError(f"--since {text!r} reaches back more than {MAX_WINDOW.days} days; choose a shorter window")
    return start


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _record_time(record: dict[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- reading captures and feedback -----------------------------------------------------------------


def _text(data: bytes, location: str) -> str:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{location}: not a readable gzip file ({exc})") from None
    return data.decode("utf-8", errors="replace")


def capture_problem(record: dict[str, Any]) -> str | None:
    """Why a capture record cannot be used (None when it can): the fields the monitor reads must
    have their format's types."""
    status = record.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int):
        return f"status {status!r} is not an HTTP status"
    if not isinstance(record.get("outputs", []), list):
        return "outputs is not a list"
    for field in ("inputs", "probabilities"):
        value = record.get(field)
        if value is not None and not isinstance(value, list):
            return f"{field} is not a list"
    for row in record.get("probabilities") or []:
        if row is not None and (not isinstance(row, dict) or any(_number(p) is None for p in row.values())):
            return "probabilities holds a row that is not {class: number}"
    if record.get("latency_ms") is not None and _number(record.get("latency_ms")) is None:
        return f"latency_ms {record.get('latency_ms')!r} is not a number"
    return None


def load_captures(
    store: Store, model: str, start: datetime, end: datetime, problems: list[str]
) -> list[dict[str, Any]]:
    """Every capture record of ``model`` whose time is in [start, end), oldest first."""
    found: list[tuple[datetime, dict[str, Any]]] = []
    day = start.date()
    while day <= end.date():
        for key in store.list_keys(keys.capture_day_prefix(model, day.isoformat())):
            unreadable: list[str] = []
            for record in capture.read_records(store.get_bytes(key), key, unreadable):
                for line_problem in unreadable:  # the lines before this record, in file order
                    _problem(problems, line_problem)
                unreadable.clear()
                moment = _record_time(record)
                problem = capture_problem(record)
                if moment is None:
                    _problem(problems, f"{key}: a record without a readable time")
                elif problem is not None:
                    _problem(problems, f"{key}: request {record.get('request_id')!r} skipped: {problem}")
                elif start <= moment < end and record.get("model") in (None, model):
                    found.append((moment, record))
            for line_problem in unreadable:
                _problem(problems, line_problem)
        day += timedelta(days=1)
    found.sort(key=lambda item: item[0])
    return [record for _, record in found]


def parse_feedback(data: bytes, key: str, problems: list[str]) -> Iterator[tuple[str, int, Any]]:
    """(request_id, row, actual) of each label in one feedback file (``.jsonl`` or ``.csv``)."""
    text = _text(data, key)
    if key.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in ("request_id", "actual") if c not in (reader.fieldnames or [])]
        if missing:
            _problem(problems, f"{key}: no {' and no '.join(missing)} column (header: request_id,row,actual)")
            return
        for number, entry in enumerate(reader, start=2):
            label = _feedback_entry(entry.get("request_id"), entry.get("row") or 0, entry.get("actual"))
            if label is None:
                _problem(problems, f"{key} line {number}: needs a request_id, a whole-number row and an actual value")
            else:
                yield label
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed: Any = json.loads(line)
        except ValueError:
            parsed = None
        label = None
        if isinstance(parsed, dict):
            label = _feedback_entry(parsed.get("request_id"), parsed.get("row", 0), parsed.get("actual"))
        if label is None:
            _problem(problems, f"{key} line {number}: not a feedback record {{request_id, row, actual}}")
        else:
            yield label


def _feedback_entry(request_id: Any, row: Any, actual: Any) -> tuple[str, int, Any] | None:
    if not request_id or profile.is_missing(actual):
        return None
    try:
        number = int(row)
    except (TypeError, ValueError):
        return None
    if number < 0 or str(number) != str(row).strip().split(".")[0]:
        return None
    return str(request_id), number, actual


def load_feedback(store: Store, model: str, problems: list[str]) -> dict[tuple[str, int], Any]:
    """Every label fed back for ``model``, by (request_id, row). A label given again replaces the
    earlier one: the API's batches are read in the order they arrived (their keys start with the
    day and the time), then the uploaded CSVs by name, so a bulk file corrects the API's labels."""
    labels: dict[tuple[str, int], Any] = {}
    prefix = keys.feedback_prefix(model)
    for key in sorted(store.list_keys(prefix), key=lambda key: (not key[len(prefix):].startswith("dt="), key)):
        if not key.endswith((".jsonl", ".csv", ".jsonl.gz")):
            continue
        for request_id, row, actual in parse_feedback(store.get_bytes(key), key, problems):
            labels[(request_id, row)] = actual
    return labels


def _problem(problems: list[str], text: str) -> None:
    if len(problems) < MAX_PROBLEMS:
        problems.append(text)


# -- statistics --------------------------------------------------------------------------------


def psi(reference: list[float], current: list[float]) -> float:
    """Population stability index of two distributions over the same bins."""
    p = np.clip(np.asarray(reference, dtype="float64"), EPSILON, None)
    q = np.clip(np.asarray(current, dtype="float64"), EPSILON, None)
    return float(np.sum((q - p) * np.log(q / p)))


def _binned_wasserstein(reference: list[float], current: list[float]) -> float | None:
    if sum(reference) <= 0 or sum(current) <= 0:
        return None
    positions = np.linspace(0, 1, len(reference)) if len(reference) > 1 else np.zeros(1)
    return float(wasserstein_distance(positions, positions, reference, current))


def _jensen_shannon(reference: list[float], current: list[float]) -> float | None:
    if sum(reference) <= 0 or sum(current) <= 0:
        return None
    return float(jensenshannon(reference, current, base=2))


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def compare_feature(
    reference: dict[str, Any], values: list[Any], known_categories: Iterable[str] | None, threshold: float
) -> dict[str, Any]:
    """One feature's drift: the reference's summary against the traffic's ``values``."""
    # as the API served them (stepml.inputs.check_records): a missing marker ("NA", "?", "") is
    # missing, a number written as text ("13.14", "$1,234") is that number, text loses its spaces
    known = frozenset(known_categories or ())
    if reference["kind"] == "numeric" and not reference.get("date"):
        values = [cells.number(v) if isinstance(v, str) else v for v in values]
    else:
        values = [None if isinstance(v, str) and marks_missing(v, known) else v for v in values]
        if reference["kind"] != "numeric":
            values = [v.strip() if isinstance(v, str) else v for v in values]
    present = [v for v in values if not profile.is_missing(v)]
    entry: dict[str, Any] = {"name": reference["name"], "kind": reference["kind"]}
    if reference["kind"] == "numeric":
        numbers = profile.as_numbers(profile.date_numbers(values) if reference.get("date") else values)
        current = profile.numeric_frequencies(numbers, reference["edges"]) if reference["edges"] else []
        finite = numbers[~np.isnan(numbers)]
        low, high = reference.get("min"), reference.get("max")
        outside = float(((finite < low) | (finite > high)).mean()) if finite.size and low is not None else 0.0
        entry.update(distance=_binned_wasserstein(reference["frequencies"], current), distance_name="wasserstein",
                     unseen_rate=None, out_of_range_rate=_round(outside))
        shape = {"edges": reference["edges"]}
    else:
        current = profile.categorical_frequencies(values, reference["categories"])
        seen = set(known_categories or ()) or set(reference["categories"]) - {profile.OTHER}
        unseen = sum(1 for v in present if str(v) not in seen) / len(present) if present else 0.0
        entry.update(distance=_jensen_shannon(reference["frequencies"], current), distance_name="jensen_shannon",
                     unseen_rate=_round(unseen), out_of_range_rate=None)
        shape = {"categories": reference["categories"]}
    value = psi(reference["frequencies"], current) if present and reference["frequencies"] else 0.0
    entry.update(
        psi=_round(value),
        distance=_round(entry["distance"]),
        drifted=bool(value > threshold),
        missing_rate={"reference": _round(reference["missing_rate"]),
                      "current": _round(1 - len(present) / len(values) if values else 0.0)},
        reference={**shape, "frequencies": reference["frequencies"]},
        current={"frequencies": [_round(f) for f in current]},
    )
    return entry


def _percentile(values: list[float], q: float) -> float | None:
    return _round(float(np.percentile(values, q)), 3) if values else None


def _same_label(actual: Any, predicted: Any) -> bool:
    try:
        return float(actual) == float(predicted)
    except (TypeError, ValueError):
        return str(actual).strip() == str(predicted).strip()


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- the report --------------------------------------------------------------------------------


def build_report(
    model: str,
    champion_version: int,
    reference: dict[str, Any],
    captures: list[dict[str, Any]],
    labels: dict[tuple[str, int], Any],
    config: MonitoringConfig,
    start: datetime,
    end: datetime,
    known_categories: dict[str, list[str]] | None = None,
    problems: list[str] | None = None,
) -> dict[str, Any]:
    """The monitor report (format: /tmp schemas, ``monitoring/<model>/…``) of ``captures``.

    ``reference`` is the champion's ``profile.json``; ``labels`` the feedback by (request_id,
    row); ``known_categories`` every category each feature had in training (the version's schema),
    for the unseen-category rate.
    """
    task = reference.get("task") or ("classification" if reference["prediction"]["kind"] == "categorical" else "regression")
    served = [r for r in captures if int(r.get("status") or 200) < 400]
    rows = sum(len(r.get("outputs") or []) for r in served)
    by_version: Counter[str] = Counter()
    by_caller: Counter[str] = Counter()
    for record in served:
        count = len(record.get("outputs") or [])
        by_version[str(record.get("version"))] += count
        by_caller[str(record.get("caller") or "unknown")] += count
    latencies = [float(r["latency_ms"]) for r in captures if _number(r.get("latency_ms")) is not None]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "model": model,
        "champion_version": champion_version,
        "generated_at": iso(datetime.now(UTC)),
        "window": {"start": iso(start), "end": iso(end)},
        "volume": {"requests": len(captures), "rows": rows, "errors": len(captures) - len(served),
                   "by_version": dict(by_version), "by_caller": dict(by_caller)},
        "latency_ms": {"p50": _percentile(latencies, 50), "p99": _percentile(latencies, 99)},
        "traffic": _hourly(captures),
    }
    full = [r for r in served if r.get("inputs") is not None]
    inputs = [with_stripped_names(row) for r in full for row in r["inputs"] if isinstance(row, dict)]
    features: list[dict[str, Any]] = []
    if inputs:
        for entry in reference["features"]:
            values = [row.get(entry["name"]) for row in inputs]
            features.append(compare_feature(entry, values, (known_categories or {}).get(entry["name"]),
                                            config.psi_threshold))
        features.sort(key=lambda f: -(f["psi"] or 0.0))
    elif served:
        report["note"] = ("the window's captures hold no inputs (capture: hashed stores only their hashes): "
                          "feature drift cannot be computed")
    report["features"] = features
    champion_rows = [r for r in served if r.get("version") == champion_version]
    outputs = [o for r in champion_rows for o in r.get("outputs") or []]
    predicted = reference["prediction"]
    if outputs:
        drift = compare_feature(predicted, outputs, None, config.psi_threshold)
        report["prediction"] = {k: drift[k] for k in ("psi", "distance", "distance_name", "drifted", "reference", "current")}
    else:
        report["prediction"] = {"psi": None, "drifted": False, "reference": {}, "current": {}}
    report["performance"] = _performance(task, reference, served, labels, champion_version)
    report["insufficient_data"] = rows < config.min_rows
    report["alarms"] = _alarms(report, config)
    if problems:
        report["problems"] = problems
    return report


def _hourly(captures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    hours: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in captures:
        moment = _record_time(record)
        if moment is not None:
            hours[iso(moment.replace(minute=0, second=0, microsecond=0))].append(record)
    traffic = []
    for hour in sorted(hours):
        records = hours[hour]
        latencies = [float(r["latency_ms"]) for r in records if _number(r.get("latency_ms")) is not None]
        traffic.append({
            "hour": hour,
            "requests": len(records),
            "rows": sum(len(r.get("outputs") or []) for r in records if int(r.get("status") or 200) < 400),
            "errors": sum(1 for r in records if int(r.get("status") or 200) >= 400),
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p99_ms": _percentile(latencies, 99),
        })
    return traffic


def _performance(
    task: str, reference: dict[str, Any], served: list[dict[str, Any]], labels: dict[tuple[str, int], Any],
    champion_version: int,
) -> dict[str, Any]:
    metric = "accuracy" if task == "classification" else "rmse"
    reference_value = (reference.get("metrics") or {}).get(metric)
    # Calibration: on the test split, accuracy - mean confidence (0 for a calibrated model).
    confidence = reference["prediction"].get("confidence")
    offset = reference_value - confidence if task == "classification" and None not in (reference_value, confidence) else 0.0
    per_version: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"confidence": [], "hits": [], "errors": []})
    for record in served:
        bucket = per_version[str(record.get("version"))]
        outputs = record.get("outputs") or []
        for row, probabilities in enumerate(record.get("probabilities") or []):
            if isinstance(probabilities, dict) and probabilities:
                bucket["confidence"].append(max(float(p) for p in probabilities.values()))
        request_id = record.get("request_id")
        for row, output in enumerate(outputs):
            actual = labels.get((str(request_id), row))
            if actual is None:
                continue
            if task == "classification":
                bucket["hits"].append(float(_same_label(actual, output)))
            else:
                a, p = _number(actual), _number(output)
                if a is not None and p is not None:
                    bucket["errors"].append((a - p) ** 2)

    def summary(bucket: dict[str, list[float]]) -> dict[str, Any]:
        estimated = None
        if task == "classification" and bucket["confidence"]:
            estimated = min(1.0, max(0.0, float(np.mean(bucket["confidence"])) + offset))
        observed = bucket["hits"] if task == "classification" else bucket["errors"]
        true = None
        if observed:
            true = float(np.mean(observed)) if task == "classification" else math.sqrt(float(np.mean(observed)))
        return {"estimated": _round(estimated), "true": _round(true), "labelled_rows": len(observed)}

    versions = {version: summary(bucket) for version, bucket in sorted(per_version.items())}
    champion = versions.get(str(champion_version), {"estimated": None, "true": None, "labelled_rows": 0})
    return {"metric": metric, "reference": _round(reference_value), **champion, "by_version": versions}


def _alarms(report: dict[str, Any], config: MonitoringConfig) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = []
    if not report["insufficient_data"]:
        for feature in report["features"]:
            if feature["drifted"]:
                alarms.append({"kind": "drift", "feature": feature["name"], "value": feature["psi"],
                               "threshold": config.psi_threshold,
                               "message": f"feature {feature['name']!r} drifted: PSI {feature['psi']:.3f} > "
                                          f"{config.psi_threshold}"})
        prediction = report["prediction"]
        if prediction.get("drifted"):
            alarms.append({"kind": "drift", "feature": None, "value": prediction["psi"],
                           "threshold": config.psi_threshold,
                           "message": f"the predictions drifted: PSI {prediction['psi']:.3f} > {config.psi_threshold}"})
    performance = report["performance"]
    reference = performance["reference"]
    if reference is None:
        return alarms
    if performance["metric"] == "accuracy":
        floor = reference - config.accuracy_drop
        checks = [("estimated", performance["estimated"], not report["insufficient_data"]),
                  ("true", performance["true"], performance["labelled_rows"] >= config.min_rows)]
        for name, value, enough in checks:
            if enough and value is not None and value < floor:
                alarms.append({"kind": "performance", "feature": None, "value": value, "threshold": _round(floor),
                               "message": f"{name} accuracy {value:.3f} is more than {config.accuracy_drop} under "
                                          f"the test accuracy {reference:.3f}"})
    elif performance["true"] is not None and performance["labelled_rows"] >= config.min_rows:
        ceiling = reference * (1 + config.rmse_increase)
        if performance["true"] > ceiling:
            alarms.append({"kind": "performance", "feature": None, "value": performance["true"],
                           "threshold": _round(ceiling),
                           "message": f"true RMSE {performance['true']:.4g} is more than "
                                      f"{config.rmse_increase:.0%} over the test RMSE {reference:.4g}"})
    return alarms


# -- one run -----------------------------------------------------------------------------------


def run_monitor(store: Store, model: str, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """Monitor ``model``'s champion over [start, end) (default: the last 24 hours); the report is
    written to ``monitoring/<model>/reports/<stamp>.json`` and ``latest.json``, and returned."""
    from stepml.registry import ModelRegistry

    keys.check_dataset_name(model)
    end = end or datetime.now(UTC)
    start = start or end - DEFAULT_WINDOW
    registry = ModelRegistry(store)
    meta = registry.get_version_by_alias(model)
    reference = store.find_json(keys.version_file(model, meta["version"], keys.VERSION_PROFILE))
    if reference is None:
        raise NotFoundError(
            f"model {model!r} version {meta['version']} has no reference profile ({keys.VERSION_PROFILE}): it was "
            "registered before stepml kept one; retrain it to monitor it"
        )
    config = load_config(store, model).monitoring
    problems: list[str] = []
    captures = load_captures(store, model, start, end, problems)
    labels = load_feedback(store, model, problems)
    categories = {f["name"]: list(f["categories"]) for f in meta.get("schema", []) if f.get("categories")}
    report = build_report(model, meta["version"], reference, captures, labels, config, start, end, categories, problems)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    store.put_json(keys.monitoring_report(model, stamp), report)
    store.put_json(keys.monitoring_latest(model), report)
    return report


def monitored_models(store: Store) -> list[str]:
    """The models with a champion (what a scheduled run monitors)."""
    from stepml.registry import CHAMPION, ModelRegistry

    registry = ModelRegistry(store)
    return [name for name in registry.list_models() if registry.alias_version(name, CHAMPION) is not None]


def key_figures(report: dict[str, Any]) -> dict[str, float]:
    """The report's figures published as CloudWatch metrics (absent ones are left out)."""
    figures = {
        "MaxFeaturePSI": max((f["psi"] or 0.0 for f in report["features"]), default=None),
        "PredictionPSI": report["prediction"].get("psi"),
        "CapturedRequests": report["volume"]["requests"],
    }
    performance = report["performance"]
    if performance["metric"] == "accuracy":
        figures["EstimatedAccuracy"] = performance["estimated"]
        figures["TrueAccuracy"] = performance["true"]
    else:
        figures["TrueRMSE"] = performance["true"]
    return {name: float(value) for name, value in figures.items() if value is not None}


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """A few lines of a report (what a run over every model returns; the reports are in S3)."""
    return {"model": report["model"], "champion_version": report["champion_version"],
            "requests": report["volume"]["requests"], "alarms": [a["message"] for a in report["alarms"]],
            "report": keys.monitoring_latest(report["model"])}


#: SNS limits a subject to 100 characters.
MAX_SUBJECT = 100


def alarm_message(report: dict[str, Any]) -> tuple[str, str]:
    """One readable SNS subject and body for a report with alarms."""
    model, alarms = report["model"], report["alarms"]
    subject = f"stepml: {model} monitor raised {len(alarms)} alarm{'s' if len(alarms) != 1 else ''}"[:MAX_SUBJECT]
    performance = report["performance"]
    lines = [
        f"The stepml monitor found problems with model {model!r} (champion version {report['champion_version']}).",
        "",
        f"Window:   {report['window']['start']} to {report['window']['end']}",
        (f"Traffic:  {report['volume']['requests']} requests, {report['volume']['rows']} rows, "
        f"{report['volume']['errors']} errors"),
        (f"{performance['metric'].capitalize()}: test {performance['reference']}, estimated {performance['estimated']}, "
        f"true {performance['true']} ({performance['labelled_rows']} labelled rows)"),
        "",
        "Alarms:",
        *[f"  - {alarm['message']}" for alarm in alarms],
        "",
        "See it:",
        f"  stepml monitor {model}",
        f"  s3://…/{keys.monitoring_latest(model)}",
    ]
    return subject, "\n".join(lines)


def monitor(
    event: dict[str, Any], store: Store, sns: Any, topic_arn: str, now: datetime | None = None
) -> dict[str, Any]:
    """One monitor run, as the Monitor function makes it: ``event`` names a ``model`` (and a
    ``since``: ``24h``, ``7d``, an ISO time) or nothing, for every model with a champion (the
    schedule's run). Each report is written, and a report with alarms is published as one readable
    message to ``topic_arn``.

    A model named in the event that cannot be monitored raises its error; in a run over every
    model it is listed under ``failed`` and the others are still monitored.
    """
    from stepml.errors import StepmlError

    now = now or datetime.now(UTC)
    since = event.get("since")
    start = parse_since(str(since), now) if since else now - DEFAULT_WINDOW
    named = event.get("model")
    if named is not None and not isinstance(named, str):
        raise DataError(f"the event's 'model' must be a model name, got {named!r}")
    reports, failed, notified = [], [], []
    for model in [named] if named else monitored_models(store):
        try:
            report = run_monitor(store, model, start, now)
        except StepmlError as exc:
            if named:
                raise
            failed.append({"model": model, "error": type(exc).__name__, "message": str(exc)})
            continue
        reports.append(report)
        if report["alarms"]:
            subject, body = alarm_message(report)
            published = sns.publish(TopicArn=topic_arn, Subject=subject, Message=body)
            notified.append({"model": model, "message_id": published.get("MessageId")})
    return {"reports": reports, "failed": failed, "notified": notified}
