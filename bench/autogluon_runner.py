"""Fit AutoGluon on one training split and predict its test split; run inside .venv-autogluon.

AutoGluon is a bench-only reference, never a dependency of stepml: its pins clash with the
project's, so it lives in its own virtual environment (``make autogluon-venv``, pinned by
constraints-autogluon.txt) and bench/bench_models.py calls this script there, one process per
dataset, with a request file:

    {"train": "train.csv", "test": "test.csv", "target": "y", "task": "classification",
     "eval_metric": "accuracy", "time_limit": 60, "num_cpus": 2, "presets": "medium_quality",
     "model_dir": "ag", "output": "result.json"}

The CSVs are the very rows (and columns) stepml trains and is tested on; a classification
target arrives as text labels. The result file holds the test split's predictions (and class
probabilities, columns in ``classes`` order), the fit's wall-clock seconds, and the median
wall-clock milliseconds of ``predictor.predict`` on a one-row DataFrame (what serving one request
with AutoGluon costs; its feature pipeline included).

Usage: .venv-autogluon/bin/python bench/autogluon_runner.py request.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

#: One-row predictions timed; the median is reported (the first call, which warms caches, is not timed).
LATENCY_CALLS = 30


def main(request_path: str) -> None:
    import pandas as pd
    from autogluon.tabular import TabularPredictor
    from autogluon.tabular import __version__ as autogluon_version

    request = json.loads(Path(request_path).read_text())
    target = request["target"]
    dtype = {target: str} if request["task"] == "classification" else None
    train = pd.read_csv(request["train"], dtype=dtype, keep_default_na=True)
    test = pd.read_csv(request["test"], dtype=dtype, keep_default_na=True)
    features = test.drop(columns=[target])
    problem_type = None
    if request["task"] == "regression":
        problem_type = "regression"
    else:
        problem_type = "binary" if train[target].nunique() == 2 else "multiclass"
    predictor = TabularPredictor(
        label=target, problem_type=problem_type, eval_metric=request["eval_metric"], path=request["model_dir"],
        verbosity=0,
    )
    started = time.perf_counter()
    predictor.fit(
        train, presets=request["presets"], time_limit=request["time_limit"], num_cpus=request["num_cpus"],
    )
    fit_seconds = time.perf_counter() - started
    predicted = predictor.predict(features)
    result: dict[str, object] = {
        "autogluon": autogluon_version,
        "fit_seconds": fit_seconds,
        "best_model": predictor.model_best,
        "models": len(predictor.model_names()),
        # each model's validation score, and its test score (what AutoGluon leans on, for reading)
        "leaderboard": [
            {key: (round(value, 6) if isinstance(value, float) else value) for key, value in row.items()}
            for row in predictor.leaderboard(test, silent=True)[["model", "score_val", "score_test", "fit_time"]]
            .to_dict("records")
        ],
        "predictions": predicted.tolist(),
    }
    if request["task"] == "classification":
        probabilities = predictor.predict_proba(features)
        result["classes"] = [str(c) for c in probabilities.columns]
        result["probabilities"] = probabilities.to_numpy().tolist()
    one_row = features.iloc[[0]]
    predictor.predict(one_row)
    timings = []
    for _ in range(LATENCY_CALLS):
        started = time.perf_counter()
        predictor.predict(one_row)
        timings.append(time.perf_counter() - started)
    result["predict_row_ms"] = statistics.median(timings) * 1000
    Path(request["output"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
