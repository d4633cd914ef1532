"""A classifier trained on class codes 0..K-1 that answers in the user's own labels.

XGBoost's classifiers (``xgboost.XGBClassifier``, ``xgboost.spark.SparkXGBClassifier``) take the
classes only as the numbers 0..K-1, so the Spark path (:mod:`stepml.spark_job`) trains on codes:
the user's labels, sorted as :func:`numpy.unique` sorts them (scikit-learn's order), numbered.
:class:`LabelledClassifier` puts the labels back: ``classes_`` are the user's labels,
``predict`` answers them, ``predict_proba``'s columns follow them. The registry's pipeline then
evaluates, profiles and exports like any scikit-learn classifier; the ONNX export converts the
inner booster (:func:`unwrap`) and records the labels as the model's classes.

This module imports only numpy and scikit-learn's base classes, so a pickled pipeline holding it
loads wherever the inner estimator's library is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class LabelledClassifier(ClassifierMixin, BaseEstimator):
    """A fitted classifier of codes 0..K-1, answering ``labels[code]``.

    Parameters
    ----------
    estimator:
        The fitted classifier; its ``predict_proba`` has one column per code.
    labels:
        The user's class labels, ``labels[code]`` for each code, in ascending order.
    """

    def __init__(self, estimator: Any, labels: Any) -> None:
        self.estimator = estimator
        self.labels = labels

    def fit(self, X: Any, y: Any) -> LabelledClassifier:
        """Fit the inner estimator on ``y``'s codes in :attr:`labels` (each label must be one of them)."""
        labels = np.asarray(self.labels)
        codes = np.searchsorted(labels, np.asarray(y))
        if np.any(codes >= len(labels)) or np.any(labels[np.minimum(codes, len(labels) - 1)] != np.asarray(y)):
            raise ValueError("y holds a label that is not in labels")
        self.estimator.fit(X, codes)
        return self._fitted()

    def _fitted(self) -> LabelledClassifier:
        self.classes_ = np.asarray(self.labels)
        self.n_features_in_ = int(self.estimator.n_features_in_)
        return self

    @classmethod
    def of_fitted(cls, estimator: Any, labels: Any) -> LabelledClassifier:
        """Wrap an estimator already fitted on the codes of ``labels``."""
        wrapped = cls(estimator, np.asarray(labels))
        return wrapped._fitted()

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]


def unwrap(estimator: Any) -> tuple[Any, Any | None]:
    """The estimator the ONNX converters see, and the labels of its codes (None: not wrapped)."""
    if isinstance(estimator, LabelledClassifier):
        return estimator.estimator, estimator.classes_
    return estimator, None
