"""Seed A's way of serving, for comparison: a joblib-pickled scikit-learn pipeline, pandas, predict.

What seed A's inference Lambda does per request: parse the JSON, build a pandas DataFrame, call the
pipeline's ``predict`` (and ``predict_proba``), return JSON. The pickle is loaded once per process.
"""

from __future__ import annotations

import json
from typing import Any

import joblib
import pandas as pd

_model: Any = None
_numeric: list[str] = []


def load(path: str, numeric: list[str]) -> None:
    global _model, _numeric
    _model = joblib.load(path)
    _numeric = numeric


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = json.loads(event["body"])
    records = body.get("instances", [body])
    frame = pd.DataFrame(records)
    frame[_numeric] = frame[_numeric].astype("float64")
    result: dict[str, Any] = {"predictions": _model.predict(frame).tolist()}
    if hasattr(_model, "predict_proba"):
        classes = [str(c) for c in _model.classes_]
        result["probabilities"] = [dict(zip(classes, row)) for row in _model.predict_proba(frame).tolist()]
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(result)}
