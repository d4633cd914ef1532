"""How close the monitor's label-free accuracy estimate comes to the true accuracy, on UCI Adult.

A model is fitted as the pipeline fits it (recipe auto) on 5,000 Adult rows, its reference profile
computed on 3,000 test rows as "Evaluate and register" computes it; the remaining rows are served
as captured traffic (four rows a request) with their labels fed back, and the monitor's report
gives the estimated and the true accuracy side by side. Besides the held-out rows as they come,
three covariate shifts of them: only people under 30, only married people, only people working
over 45 hours a week. Also reported: the estimate without the test-split calibration (the plain
mean of the highest class probability), and how long the report took.

Usage: STEPML_DATA_DIR=../shared/datasets python bench/bench_monitor.py [--output bench/results/monitor.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from stepml import monitoring
from stepml.columns import MISSING_MARKERS
from stepml.config import DatasetConfig, MonitoringConfig
from stepml.evaluation import evaluate
from stepml.preprocessing import feature_schema, to_model_frame
from stepml.stages import _reference_profile
from stepml.training import fit_with_config

NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


def served(pipeline: Any, schema: list[dict[str, Any]], rows: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[tuple[str, int], Any]]:
    """Capture records of ``rows`` (four a request) and the labels fed back for them."""
    names = [f["name"] for f in schema]
    with threadpool_limits(limits=1, user_api="openmp"):
        probabilities = pipeline.predict_proba(to_model_frame(rows, schema))
    classes = [str(c) for c in pipeline.classes_]
    records, labels = [], {}
    for start in range(0, len(rows), 4):
        chunk = rows.iloc[start:start + 4]
        request_id = uuid.uuid4().hex
        inputs = [{n: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for n, v in zip(names, row)}
                  for row in chunk[names].itertuples(index=False)]
        chunk_probabilities = probabilities[start:start + 4]
        records.append({"stepml_capture": 1, "time": (NOW - timedelta(hours=1)).isoformat(), "request_id": request_id,
                        "model": "adult", "version": 1, "mode": "full", "inputs": inputs,
                        "outputs": [classes[int(np.argmax(p))] for p in chunk_probabilities],
                        "probabilities": [dict(zip(classes, map(float, p))) for p in chunk_probabilities],
                        "latency_ms": 0.3, "status": 200})
        labels.update({(request_id, i): actual for i, actual in enumerate(chunk["income"])})
    return records, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("bench/results/monitor.json"))
    args = parser.parse_args()
    source = Path(os.environ.get("STEPML_DATA_DIR", "../shared/datasets")) / "adult.csv"
    frame = pd.read_csv(source, na_values=MISSING_MARKERS, keep_default_na=False)
    order = np.random.default_rng(7).permutation(len(frame))
    train, test, traffic = (frame.iloc[order[a:b]].reset_index(drop=True)
                            for a, b in ((0, 5000), (5000, 8000), (8000, len(frame))))
    schema = feature_schema(train, "income")
    pipeline, _ = fit_with_config(train, "income", schema, "classification", DatasetConfig())
    with threadpool_limits(limits=1, user_api="openmp"):
        evaluation = evaluate(pipeline, train, test, "income", schema, "classification")
        reference = _reference_profile(pipeline, train, test, schema, "classification", evaluation["metrics"])
    offset = evaluation["metrics"]["accuracy"] - reference["prediction"]["confidence"]
    scenarios = {
        "held-out rows": traffic,
        "age under 30": traffic[traffic["age"] < 30],
        "married only": traffic[traffic["marital-status"] == "Married-civ-spouse"],
        "over 45 hours a week": traffic[traffic["hours-per-week"] > 45],
    }
    results = []
    for name, rows in scenarios.items():
        records, labels = served(pipeline, schema, rows.reset_index(drop=True))
        started = time.perf_counter()
        report = monitoring.build_report("adult", 1, reference, records, labels, MonitoringConfig(),
                                         NOW - timedelta(hours=24), NOW)
        seconds = time.perf_counter() - started
        performance = report["performance"]
        results.append({
            "scenario": name, "rows": len(rows), "true_accuracy": performance["true"],
            "estimated_accuracy": performance["estimated"],
            "estimate_error": round(performance["estimated"] - performance["true"], 4),
            "uncalibrated_error": round(performance["estimated"] - offset - performance["true"], 4),
            "worst_feature": report["features"][0]["name"], "worst_psi": report["features"][0]["psi"],
            "alarms": [a["message"] for a in report["alarms"]], "report_seconds": round(seconds, 2),
        })
        print(f"{name:22} rows {len(rows):6}  true {performance['true']:.4f}  estimated {performance['estimated']:.4f}"
              f"  error {results[-1]['estimate_error']:+.4f} (uncalibrated {results[-1]['uncalibrated_error']:+.4f})"
              f"  alarms {len(report['alarms'])}  {seconds:.1f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"test_accuracy": evaluation["metrics"]["accuracy"],
                                       "test_confidence": reference["prediction"]["confidence"],
                                       "scenarios": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
