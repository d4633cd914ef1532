"""The model benchmark's side-by-side with AutoGluon: the gap's bootstrap interval is measured on
the test rows both models predicted, and shown only beside the AutoGluon fit it was measured against."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bench() -> Any:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module("bench_models")
    finally:
        sys.path.remove(str(ROOT / "bench"))


def _labels(bench: Any, y: np.ndarray, predicted: np.ndarray) -> Any:
    classes = np.array(["no", "yes"])
    probabilities = np.column_stack([predicted == "no", predicted == "yes"]).astype(float)
    return bench.Scored("classification", "accuracy", y, predicted, probabilities, classes)


def test_the_interval_is_zero_for_the_same_predictions_and_excludes_zero_for_a_real_gap(bench: Any) -> None:
    y = np.array(["yes", "no"] * 100)
    right = _labels(bench, y, y.copy())
    assert bench.gap_interval(right, right, resamples=200) == [0.0, 0.0]
    half_wrong = y.copy()
    half_wrong[:100] = np.where(y[:100] == "yes", "no", "yes")  # accuracy 0.5
    low, high = bench.gap_interval(right, _labels(bench, y, half_wrong), resamples=200)
    assert 0.4 < low < 0.5 < high < 0.6  # ours 1.0 against theirs 0.5 on 200 rows
    low, high = bench.gap_interval(_labels(bench, y, half_wrong), right, resamples=200)
    assert -0.6 < low < high < -0.4


def test_an_error_metrics_gap_is_a_ratio(bench: Any) -> None:
    y = np.linspace(1.0, 100.0, 300)
    rng = np.random.default_rng(1)
    ours = bench.Scored("regression", "rmse", y, y + rng.normal(0, 2.0, 300), None, None)
    theirs = bench.Scored("regression", "rmse", y, y + rng.normal(0, 1.0, 300), None, None)
    low, high = bench.gap_interval(ours, theirs, resamples=200)
    assert 0.6 < low < 1.0 < high < 1.5  # RMSE about twice theirs: a gap of about +100 %


def _row(recipe: str, metric: float, gap: dict[str, Any] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"dataset": "shop", "recipe": recipe, "primary_metric": "accuracy",
                           "metrics": {"accuracy": metric}, "train_seconds": 1.0, "predict_row_ms": 0.1}
    if gap is not None:
        row["autogluon_gap"] = gap
    return row


def test_the_interval_shows_only_beside_the_autogluon_fit_it_was_measured_against(bench: Any) -> None:
    measured = {"autogluon_metric": 0.90, "interval95": [-0.03, 0.01], "resamples": 1000}
    same = bench.side_by_side([_row("auto", 0.89, measured), _row("autogluon", 0.90)])["shop"]
    assert same["auto_gap_interval95"] == [-0.03, 0.01] and "autogluon_gap" not in same["auto"]
    assert same["auto_gap"] == pytest.approx(-0.01)
    # AutoGluon fitted again since (--update): the interval measured against the old fit is left out
    later = bench.side_by_side([_row("auto", 0.89, measured), _row("autogluon", 0.91)])["shop"]
    assert "auto_gap_interval95" not in later and later["auto_gap"] == pytest.approx(-0.02)


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "f1", "roc_auc"])
def test_a_resamples_classification_score_is_evaluations_own(bench: Any, metric: str) -> None:
    from stepml.evaluation import metric_value

    rng = np.random.default_rng(3)
    classes = np.array(["a", "b", "c"])
    y = rng.choice(classes, 300, p=[0.7, 0.2, 0.1])
    probabilities = rng.dirichlet([1, 1, 1], 300)
    predicted = classes[np.argmax(probabilities, axis=1)]
    scored = bench.Scored("classification", metric, y, predicted, probabilities, classes)
    rows = rng.integers(0, 300, 300)
    assert scored.score(rows) == pytest.approx(
        metric_value("classification", metric, y[rows], predicted[rows], probabilities[rows], classes))


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_a_resamples_regression_score_is_evaluations_own(bench: Any, metric: str) -> None:
    from stepml.evaluation import metric_value

    rng = np.random.default_rng(4)
    y = rng.normal(10, 3, 200)
    predicted = y + rng.normal(0, 1, 200)
    rows = rng.integers(0, 200, 200)
    scored = bench.Scored("regression", metric, y, predicted, None, None)
    assert scored.score(rows) == pytest.approx(metric_value("regression", metric, y[rows], predicted[rows]))
