"""Hold-out metrics for a fitted pipeline, next to a trivial baseline's.

The baseline (majority class, or the training mean) shows whether the model learned anything.
Classification: accuracy, balanced accuracy, F1 (of the second label for two classes, macro
otherwise), ROC AUC (one-vs-rest for several classes) and a confusion matrix. Regression: RMSE, MAE
and R², in the target's own units, and a sample of at most :data:`SAMPLE_POINTS` (actual, predicted)
pairs for a chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

from stepml.config import DEFAULT_METRIC, METRICS
from stepml.preprocessing import class_labels, to_model_frame

#: The metric each task is judged by by default, and whether larger is better.
PRIMARY_METRIC = {task: (name, METRICS[task][name]) for task, name in DEFAULT_METRIC.items()}
#: At most this many (actual, predicted) pairs are kept for a regression chart.
SAMPLE_POINTS = 200


@dataclass(frozen=True)
class Predictions:
    """A pipeline's outputs on a split: predicted labels (or values) and, for a classifier, its
    class probabilities (columns in ``pipeline.classes_`` order)."""

    predicted: np.ndarray
    probabilities: np.ndarray | None = None


def predict(pipeline: Pipeline, features: pd.DataFrame, task: str) -> Predictions:
    """The pipeline's outputs on ``features`` (:func:`stepml.preprocessing.to_model_frame`), each
    computed once: a classifier's labels are its most probable classes, as its ``predict`` would
    give them (every recipe's classifier predicts the argmax of its probabilities), without running
    the model a second time."""
    if task == "classification":
        probabilities = pipeline.predict_proba(features)
        return Predictions(np.asarray(pipeline.classes_)[np.argmax(probabilities, axis=1)], probabilities)
    return Predictions(np.asarray(pipeline.predict(features)))


def evaluate(
    pipeline: Pipeline,
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    schema: list[dict[str, Any]],
    task: str,
    primary_metric: str | None = None,
    predictions: Predictions | None = None,
) -> dict[str, Any]:
    """Metrics of ``pipeline`` and of the trivial baseline on the test split.

    ``primary_metric`` (``config.metric_for(task)``) names the metric the model is judged by; the
    task's default (accuracy, RMSE) when not given. Keys: ``task``, ``primary_metric``,
    ``higher_is_better``, ``metrics``, ``baseline``, ``test_rows``, ``train_rows``; for
    classification ``labels`` and ``confusion_matrix`` (rows: true label, columns: predicted, in
    ``labels`` order); for regression ``predicted_vs_actual`` ``{"actual": [...], "predicted":
    [...]}``. ``predictions``: the pipeline's outputs on ``test`` (:func:`predict`), when the caller
    has them already; computed here otherwise.
    """
    if predictions is None:
        predictions = predict(pipeline, to_model_frame(test, schema), task)
    predicted = predictions.predicted
    if task == "classification":
        y_true = class_labels(test[target])
        y_train = class_labels(train[target])
        probabilities = predictions.probabilities
        assert probabilities is not None  # predict() gives a classifier's
        model = _classification_metrics(y_true, predicted, probabilities, pipeline.classes_)
        majority = y_train.value_counts().idxmax()
        prior = y_train.value_counts(normalize=True).reindex(pipeline.classes_, fill_value=0).to_numpy()
        baseline = _classification_metrics(
            y_true,
            np.full(len(y_true), majority, dtype=object),
            np.tile(prior, (len(y_true), 1)),
            pipeline.classes_,
        )
        extra: dict[str, Any] = {
            "labels": [_plain(c) for c in pipeline.classes_],
            "confusion_matrix": _confusion_matrix(
                y_true.astype(str), pd.Series(predicted).astype(str), [str(c) for c in pipeline.classes_]
            ),
        }
    else:
        y_true = test[target].astype(float)
        model = _regression_metrics(y_true, predicted)
        baseline = _regression_metrics(y_true, np.full(len(y_true), float(train[target].mean())))
        extra = {"predicted_vs_actual": _sample(y_true.to_numpy(), np.asarray(predicted, dtype=float))}
    name = primary_metric or DEFAULT_METRIC[task]
    if name not in METRICS[task]:
        raise ValueError(f"{name!r} is not a {task} metric; choose one of {', '.join(METRICS[task])}")
    return {
        "task": task,
        "primary_metric": name,
        "higher_is_better": METRICS[task][name],
        "metrics": model,
        "baseline": baseline,
        "test_rows": len(test),
        "train_rows": len(train),
        **extra,
    }


def metric_value(
    task: str,
    metric: str,
    y_true: Any,
    predicted: Any,
    probabilities: np.ndarray | None = None,
    classes: np.ndarray | None = None,
) -> float:
    """One metric from true and predicted labels (and class probabilities) or values; tuning scores
    its validation split with it."""
    if task == "classification":
        if probabilities is None or classes is None:
            raise ValueError("classification metrics need the class probabilities and the classes")
        return _classification_metrics(pd.Series(y_true), predicted, probabilities, classes)[metric]
    return _regression_metrics(pd.Series(y_true, dtype=float), np.asarray(predicted, dtype=float))[metric]


def _sample(actual: np.ndarray, predicted: np.ndarray) -> dict[str, list[float]]:
    """A reproducible random sample of at most SAMPLE_POINTS pairs, rounded for a small payload."""
    chosen = np.arange(len(actual))
    if len(chosen) > SAMPLE_POINTS:
        chosen = np.sort(np.random.default_rng(0).choice(chosen, SAMPLE_POINTS, replace=False))
    return {
        "actual": [float(f"{v:.6g}") for v in actual[chosen]],
        "predicted": [float(f"{v:.6g}") for v in predicted[chosen]],
    }


def _confusion_matrix(y_true: pd.Series, predicted: pd.Series, labels: list[str]) -> list[list[int]]:
    """``sklearn.metrics.confusion_matrix(y_true, predicted, labels=labels)`` as lists, counted on the
    labels' codes (sorting the texts of a large test split took seconds); a row whose true or
    predicted label is not in ``labels`` is not counted, as there."""
    true_codes = pd.Categorical(y_true, categories=labels).codes.astype(np.int64)
    predicted_codes = pd.Categorical(predicted, categories=labels).codes.astype(np.int64)
    counted = (true_codes >= 0) & (predicted_codes >= 0)
    size = len(labels)
    cells = np.bincount(true_codes[counted] * size + predicted_codes[counted], minlength=size * size)
    return cells.reshape(size, size).tolist()


def _classification_metrics(
    y_true: pd.Series, predicted: Any, probabilities: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    # Each label's text as a small code numbered in the texts' sorted order, which is the order
    # scikit-learn's metrics give the texts themselves: the same values, without sorting the
    # split's strings once per metric (8 s of Evaluate at 400k test rows)
    true_text = y_true.astype(str).to_numpy()
    predicted_text = pd.Series(predicted).astype(str).to_numpy()
    texts = sorted({*pd.unique(true_text), *pd.unique(predicted_text), *(str(c) for c in classes)})
    true_text, predicted_text = (pd.Categorical(t, categories=texts).codes.astype(np.intp)
                                 for t in (true_text, predicted_text))
    code = {text: index for index, text in enumerate(texts)}
    class_text = [code[str(c)] for c in classes]
    result = {
        "accuracy": float(skm.accuracy_score(true_text, predicted_text)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(true_text, predicted_text)),
    }
    if len(classes) == 2:
        result["f1"] = float(skm.f1_score(true_text, predicted_text, pos_label=class_text[1], zero_division=0))
        result["roc_auc"] = _safe_auc(lambda: skm.roc_auc_score(true_text == class_text[1], probabilities[:, 1]))
    else:
        result["f1"] = float(skm.f1_score(true_text, predicted_text, average="macro", zero_division=0))
        result["roc_auc"] = _safe_auc(
            lambda: skm.roc_auc_score(true_text, probabilities, multi_class="ovr", labels=class_text)
        )
    return result


def _safe_auc(compute: Any) -> float:
    # ROC AUC is undefined when the test split holds a single class.
    try:
        return float(compute())
    except ValueError:
        return float("nan")


def _regression_metrics(y_true: pd.Series, predicted: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
        "r2": float(skm.r2_score(y_true, predicted)),
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
