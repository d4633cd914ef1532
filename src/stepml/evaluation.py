"""Hold-out metrics for a fitted pipeline, next to a trivial baseline's.

The baseline (majority class, or the training mean) shows whether the model learned anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

from stepml.preprocessing import class_labels, to_model_frame

#: The metric each task is judged by, and whether larger is better.
PRIMARY_METRIC = {"classification": ("accuracy", True), "regression": ("rmse", False)}


def evaluate(
    pipeline: Pipeline,
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    schema: list[dict[str, Any]],
    task: str,
) -> dict[str, Any]:
    """Metrics of ``pipeline`` and of the trivial baseline on the test split."""
    features = to_model_frame(test, schema)
    if task == "classification":
        y_true = class_labels(test[target])
        y_train = class_labels(train[target])
        predicted = pipeline.predict(features)
        probabilities = pipeline.predict_proba(features)
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
            "confusion_matrix": skm.confusion_matrix(
                y_true.astype(str), pd.Series(predicted).astype(str), labels=[str(c) for c in pipeline.classes_]
            ).tolist(),
        }
    else:
        y_true = test[target].astype(float)
        predicted = pipeline.predict(features)
        model = _regression_metrics(y_true, predicted)
        baseline = _regression_metrics(y_true, np.full(len(y_true), float(train[target].mean())))
        extra = {}
    name, higher_is_better = PRIMARY_METRIC[task]
    return {
        "task": task,
        "primary_metric": name,
        "higher_is_better": higher_is_better,
        "metrics": model,
        "baseline": baseline,
        "test_rows": int(len(test)),
        **extra,
    }


def beats_baseline(evaluation: dict[str, Any]) -> bool:
    name = evaluation["primary_metric"]
    model, baseline = evaluation["metrics"][name], evaluation["baseline"][name]
    return model > baseline if evaluation["higher_is_better"] else model < baseline


def _classification_metrics(
    y_true: pd.Series, predicted: Any, probabilities: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    true_text = y_true.astype(str).to_numpy()
    predicted_text = pd.Series(predicted).astype(str).to_numpy()
    class_text = [str(c) for c in classes]
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
