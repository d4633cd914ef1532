"""Production traffic for the Monitor page: capture files, feedback and a monitor report in S3.

Written the way issue #17's capture path and monitor leave them (the shared formats): requests of
Adult rows from two callers over several hours, the last hours with ``age`` shifted by +20 years
(the drifted feature), the last half hour captured in hashed mode, a few refused requests, a truncated capture file, labels fed back for some rows, and the report a
monitor run computes from them (volume, hourly traffic, PSI per feature, estimated vs true
accuracy, a drift alarm on ``age``). Some capture files are gzip-compressed, as Firehose may write them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "jwt:bob-7f3a"
DRIFTED_FEATURE = "age"
HOURS = 6
REQUESTS = 300
#: Requests from the last hours carry ``age + AGE_SHIFT``.
AGE_SHIFT = 20
PSI_THRESHOLD = 0.2
#: A capture file holding one truncated line.
BROKEN_CAPTURE = "capture/{model}/dt={day}/stepml-capture-truncated"
#: Requests of the last minutes are captured in hashed mode (the model's setting changed).
HASHED_MINUTES = 30
FEATURES = {"age": "numeric", "hours-per-week": "numeric", "educational-num": "numeric",
            "workclass": "categorical", "education": "categorical", "marital-status": "categorical"}


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _profile(values: pd.Series, kind: str) -> dict[str, Any]:
    present = values.dropna()
    if kind == "numeric":
        edges = sorted(set(np.quantile(present.astype(float), np.linspace(0, 1, 11)).tolist()))
        counts = np.histogram(present.astype(float).clip(edges[0], edges[-1]), bins=edges)[0]
        return {"edges": edges, "frequencies": (counts / counts.sum()).tolist()}
    top = present.astype(str).value_counts().index[:20].tolist()
    shares = present.astype(str).where(present.astype(str).isin(top), "__other__").value_counts(normalize=True)
    categories = [*top, "__other__"]
    return {"categories": categories, "frequencies": [float(shares.get(c, 0.0)) for c in categories]}


def _current(values: pd.Series, reference: dict[str, Any]) -> list[float]:
    present = values.dropna()
    if "edges" in reference:
        edges = reference["edges"]
        counts = np.histogram(present.astype(float).clip(edges[0], edges[-1]), bins=edges)[0]
        return (counts / max(counts.sum(), 1)).tolist()
    categories = reference["categories"]
    text = present.astype(str).where(present.astype(str).isin(categories), "__other__")
    shares = text.value_counts(normalize=True)
    return [float(shares.get(c, 0.0)) for c in categories]


def _psi(reference: list[float], current: list[float]) -> float:
    expected = np.clip(np.asarray(reference), 1e-4, None)
    actual = np.clip(np.asarray(current), 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def seed_monitoring(stack: Any, csv: Path, model: str, versions: tuple[int, int], now: datetime | None = None,
                    seed: int = 17, truncated_file: bool = True) -> dict[str, Any]:
    """Write captures, feedback and ``monitoring/<model>/latest.json`` (+ a dated copy) into the
    stack's bucket; returns what a test checks against (the report, the callers' request counts,
    the truncated capture file's key when ``truncated_file``)."""
    champion, other = versions
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=HOURS)
    random = np.random.default_rng(seed)
    table = pd.read_csv(csv, na_values=["?"], skipinitialspace=True)
    labels = table.pop("income").astype(str).tolist()
    rows = table.astype(object).where(table.notna(), None).to_dict(orient="records")

    captures: list[dict[str, Any]] = []
    served: list[dict[str, Any]] = []   # one per row: the request, the row, input, output, actual
    offsets = np.sort(random.uniform(0, HOURS * 3600, REQUESTS))
    for number, offset in enumerate(offsets):
        moment = start + timedelta(seconds=float(offset))
        caller = ALICE if random.random() < 0.65 else BOB
        version = other if number % 25 == 0 else champion
        picked = random.choice(len(rows), size=int(random.integers(1, 5)), replace=False)
        inputs = [dict(rows[i]) for i in picked]
        if moment >= now - timedelta(hours=3):
            for record in inputs:
                record["age"] = int(record["age"]) + AGE_SHIFT
        request_id = f"req-{number:04d}-{uuid.UUID(int=int(random.integers(1 << 62))).hex[:8]}"
        latency = float(random.gamma(2.0, 0.15))
        base = {"stepml_capture": 1, "time": _time(moment), "request_id": request_id, "caller": caller,
                "model": model, "version": version, "alias": "champion" if version == champion else None,
                "task": "classification", "mode": "full", "latency_ms": round(latency, 3)}
        if number % 60 == 7:
            captures.append({**base, "inputs": inputs, "input_hashes": None, "outputs": [], "probabilities": None,
                             "warnings": [], "status": 422, "error": "row 0: field 'age' expected a number"})
            continue
        outputs, probabilities = [], []
        for index in picked:
            actual = labels[index]
            right = random.random() < 0.84
            output = actual if right else (">50K" if actual == "<=50K" else "<=50K")
            confidence = float(random.uniform(0.70, 0.99))
            outputs.append(output)
            probabilities.append({output: round(confidence, 4),
                                  (">50K" if output == "<=50K" else "<=50K"): round(1 - confidence, 4)})
        hidden = moment >= now - timedelta(minutes=HASHED_MINUTES)
        for row, (index, output) in enumerate(zip(picked, outputs, strict=True)):
            served.append({"request_id": request_id, "row": row, "version": version,
                           "input": None if hidden else inputs[row],
                           "output": output, "confidence": max(probabilities[row].values()),
                           "actual": labels[index]})
        if moment >= now - timedelta(minutes=HASHED_MINUTES):  # `capture: hashed` from then on
            hashes = [hashlib.sha256(json.dumps(r, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
                      for r in inputs]
            captures.append({**base, "mode": "hashed", "inputs": None, "input_hashes": hashes, "outputs": outputs,
                             "probabilities": probabilities, "warnings": [], "status": 200})
            continue
        captures.append({**base, "inputs": inputs, "input_hashes": None, "outputs": outputs,
                         "probabilities": probabilities, "warnings": [], "status": 200})

    s3, bucket = stack.client("s3"), stack.bucket
    by_hour: dict[datetime, list[dict[str, Any]]] = {}
    for record in captures:
        hour = datetime.fromisoformat(record["time"]).replace(minute=0, second=0, microsecond=0)
        by_hour.setdefault(hour, []).append(record)
    for number, (hour, records) in enumerate(sorted(by_hour.items())):
        body = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
        key = f"capture/{model}/dt={hour:%Y-%m-%d}/stepml-capture-{hour:%Y-%m-%d-%H}-{number}"
        if number % 2:  # Firehose's GZIP compression: the reader detects it by its magic bytes
            body, key = gzip.compress(body), key + ".gz"
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    # A delivery cut short (a truncated line): the page names the file and line and reads the rest
    last = max(by_hour)
    broken = BROKEN_CAPTURE.format(model=model, day=f"{last:%Y-%m-%d}") if truncated_file else None
    if broken:
        s3.put_object(Bucket=bucket, Key=broken, Body=b'{"stepml_capture": 1, "time": "2026-')

    labelled = served[::3]
    feedback = "".join(json.dumps({"request_id": s["request_id"], "row": s["row"], "actual": s["actual"],
                                   "time": _time(now), "caller": ALICE}) + "\n" for s in labelled)
    s3.put_object(Bucket=bucket, Key=f"feedback/{model}/dt={now:%Y-%m-%d}/{uuid.uuid4()}.jsonl",
                  Body=feedback.encode("utf-8"))

    report = _report(model, champion, table, captures, served, labelled, start, now)
    body = json.dumps(report, indent=1).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=f"monitoring/{model}/reports/{now:%Y%m%dT%H%M%SZ}.json", Body=body)
    s3.put_object(Bucket=bucket, Key=f"monitoring/{model}/latest.json", Body=body)
    requests_by_caller = pd.Series([c["caller"] for c in captures]).value_counts().to_dict()
    return {"report": report, "captures": captures, "requests_by_caller": requests_by_caller,
            "broken": broken}


def _report(model: str, champion: int, training: pd.DataFrame, captures: list[dict[str, Any]],
            served: list[dict[str, Any]], labelled: list[dict[str, Any]], start: datetime,
            end: datetime) -> dict[str, Any]:
    current = pd.DataFrame([s["input"] for s in served if s["input"] is not None])
    features = []
    for name, kind in FEATURES.items():
        reference = _profile(training[name], kind)
        now_shares = _current(current[name], reference)
        psi = _psi(reference["frequencies"], now_shares)
        present = current[name].dropna()
        features.append({
            "name": name, "kind": kind, "psi": round(psi, 4),
            "distance": round(float(abs(present.astype(float).mean() - training[name].mean())), 4)
            if kind == "numeric" else round(psi / 4, 4),
            "distance_name": "wasserstein" if kind == "numeric" else "jensen_shannon",
            "drifted": psi > PSI_THRESHOLD,
            "missing_rate": {"reference": float(training[name].isna().mean()), "current": float(current[name].isna().mean())},
            "unseen_rate": None if kind == "numeric" else float((~present.astype(str).isin(reference["categories"])).mean()),
            "out_of_range_rate": float(((present.astype(float) < reference["edges"][0])
                                        | (present.astype(float) > reference["edges"][-1])).mean())
            if kind == "numeric" else None,
            "reference": reference, "current": {"frequencies": now_shares},
        })
    features.sort(key=lambda f: -f["psi"])
    latencies = np.array([c["latency_ms"] for c in captures])
    traffic = []
    for hour in pd.date_range(start, end - timedelta(hours=1), freq="h", tz=UTC):
        inside = [c for c in captures if hour <= pd.Timestamp(c["time"]) < hour + timedelta(hours=1)]
        hour_latency = np.array([c["latency_ms"] for c in inside] or [0.0])
        traffic.append({"hour": _time(hour.to_pydatetime()).replace(".000Z", "Z"), "requests": len(inside),
                        "rows": sum(len(c["outputs"]) for c in inside),
                        "errors": sum(1 for c in inside if c["status"] >= 400),
                        "latency_p50_ms": round(float(np.percentile(hour_latency, 50)), 3),
                        "latency_p99_ms": round(float(np.percentile(hour_latency, 99)), 3)})
    by_version: dict[str, dict[str, Any]] = {}
    for version in sorted({s["version"] for s in served}):
        mine = [s for s in served if s["version"] == version]
        labels = [s for s in labelled if s["version"] == version]
        by_version[str(version)] = {
            "estimated": round(float(np.mean([s["confidence"] for s in mine])), 4),
            "true": round(float(np.mean([s["output"] == s["actual"] for s in labels])), 4) if labels else None,
            "labelled_rows": len(labels)}
    drifted = [f for f in features if f["drifted"]]
    return {
        "schema": 1, "model": model, "champion_version": champion, "generated_at": _time(end),
        "window": {"start": _time(start), "end": _time(end)},
        "volume": {"requests": len(captures), "rows": len(served),
                   "errors": sum(1 for c in captures if c["status"] >= 400),
                   "by_version": pd.Series([str(s["version"]) for s in served]).value_counts().to_dict(),
                   "by_caller": pd.Series([s["request_id"] for s in served]).map(
                       {c["request_id"]: c["caller"] for c in captures}).value_counts().to_dict()},
        "latency_ms": {"p50": round(float(np.percentile(latencies, 50)), 3),
                       "p99": round(float(np.percentile(latencies, 99)), 3)},
        "traffic": traffic,
        "features": features,
        "prediction": {"psi": 0.01, "drifted": False,
                       "reference": {"categories": ["<=50K", ">50K"], "frequencies": [0.76, 0.24]},
                       "current": {"frequencies": (pd.Series([s["output"] for s in served]).value_counts(normalize=True)
                                                   .reindex(["<=50K", ">50K"], fill_value=0.0).tolist())}},
        "performance": {"metric": "accuracy", "reference": 0.85,
                        "estimated": round(float(np.mean([s["confidence"] for s in served])), 4),
                        "true": round(float(np.mean([s["output"] == s["actual"] for s in labelled])), 4),
                        "labelled_rows": len(labelled), "by_version": by_version},
        "alarms": [{"kind": "drift", "feature": f["name"], "value": f["psi"], "threshold": PSI_THRESHOLD,
                    "message": f"{f['name']} drifted: PSI {f['psi']:.2f} > {PSI_THRESHOLD}"} for f in drifted],
        "insufficient_data": False,
    }

