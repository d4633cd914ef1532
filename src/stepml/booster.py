"""The ``auto`` recipe's gradient-boosted trees: LightGBM, under HistGradientBoosting's names.

scikit-learn's ``HistGradientBoosting`` is LightGBM's algorithm written in Cython and Python; on
the small and mid-sized tables ``auto`` is used on, its Python per tree and per node split is most
of a fit (a 183-row, 3-class fold: ~0.7 ms a tree). LightGBM grows the same kind of trees
(histograms of binned features, leaf-wise, at most ``num_leaves`` leaves, a minimum of rows per
leaf, L2 on the leaf values) in C++. Measured with ``auto``'s own choice and final fit on the 19
tables of ``make bench-models`` (one run, both boosters): a fit in 0.3-0.9x of the time, the
same test score on most tables (bench/results/models.json).

:class:`BoostedTreesClassifier` and :class:`BoostedTreesRegressor` keep the parameter names
``auto``, :mod:`stepml.tuning` and users' ``params`` have always used (``max_iter``,
``max_leaf_nodes``, ``min_samples_leaf``, ``l2_regularization``, ``max_bins``, ``max_features``,
``early_stopping``, ``n_iter_no_change``, ``tol``, ``validation_fraction``, ``class_weight``) and
HistGradientBoosting's behaviour where the code relies on it:

* ``fit(X, y, X_val=..., y_val=..., sample_weight_val=...)`` with ``early_stopping`` stops after
  ``n_iter_no_change`` rounds without a validation loss lower by ``tol``, and
  ``validation_score_`` holds minus that loss after 0, 1, 2, ... rounds (round 0, before any tree,
  is ``-inf``: a best round is at least 1). Without ``X_val`` a stratified ``validation_fraction``
  of the rows is held out, as HistGradientBoosting does.
* ``predict`` / ``predict_proba`` take ``rounds``: the predictions after the first ``rounds``
  rounds (a best round where early stopping boosted on past it).
* Each distinct value of a column gets its own bin up to ``max_bins`` (LightGBM's
  ``min_data_in_bin`` = 1; its default 3 merges rare values), one thread
  (:data:`~stepml.recipes.OPENMP_THREADS`), deterministic.

The fitted LightGBM model is :attr:`model_` (``lightgbm.LGBMClassifier`` / ``LGBMRegressor``):
the ONNX export converts it (:mod:`stepml.onnx_export`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

#: LightGBM's most leaves a tree may have (HistGradientBoosting's ``max_leaf_nodes=None``).
MAX_LEAVES = 131_072
#: OpenMP threads a fit uses (see :data:`stepml.recipes.OPENMP_THREADS` for why one).
THREADS = 1


class _BoostedTrees(BaseEstimator):
    _classifier = False

    def __init__(
        self,
        *,
        learning_rate: float = 0.1,
        max_iter: int = 100,
        max_leaf_nodes: int | None = 31,
        max_depth: int | None = None,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        max_features: float = 1.0,
        max_bins: int = 255,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-7,
        random_state: int | None = None,
    ) -> None:
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_features = max_features
        self.max_bins = max_bins
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state

    def _lightgbm(self) -> Any:
        import lightgbm

        settings: dict[str, Any] = {
            "learning_rate": self.learning_rate,
            "n_estimators": int(self.max_iter),
            "num_leaves": MAX_LEAVES if self.max_leaf_nodes is None else int(self.max_leaf_nodes),
            "max_depth": -1 if self.max_depth is None else int(self.max_depth),
            "min_child_samples": int(self.min_samples_leaf),
            "reg_lambda": float(self.l2_regularization),
            "feature_fraction_bynode": float(self.max_features),
            "max_bin": int(self.max_bins),
            "min_data_in_bin": 1,
            "random_state": self.random_state,
            "n_jobs": THREADS,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }
        if self._classifier:
            return lightgbm.LGBMClassifier(class_weight=getattr(self, "class_weight", None), **settings)
        return lightgbm.LGBMRegressor(**settings)

    def fit(self, X: Any, y: Any, sample_weight: Any = None, X_val: Any = None, y_val: Any = None,
            sample_weight_val: Any = None) -> Any:
        import lightgbm

        X, y = np.asarray(X), np.asarray(y)
        model = self._lightgbm()
        if not self.early_stopping:
            model.fit(X, y, sample_weight=sample_weight)
        else:
            if X_val is None:
                X, X_val, y, y_val, sample_weight = self._held_out(X, y, sample_weight)
            losses: dict[str, Any] = {}
            model.fit(
                X, y, sample_weight=sample_weight, eval_set=[(np.asarray(X_val), np.asarray(y_val))],
                eval_sample_weight=None if sample_weight_val is None else [np.asarray(sample_weight_val)],
                callbacks=[lightgbm.early_stopping(int(self.n_iter_no_change), first_metric_only=True,
                                                   verbose=False, min_delta=max(float(self.tol), 0.0)),
                           lightgbm.record_evaluation(losses)],
            )
            curve = next(iter(losses["valid_0"].values()))
            self.validation_score_ = -np.asarray([np.inf, *curve], dtype=float)
        self.model_ = model
        self.n_iter_ = int(model.booster_.current_iteration())
        self.n_features_in_ = int(X.shape[1])
        return self

    def _held_out(self, X: np.ndarray, y: np.ndarray, sample_weight: Any) -> tuple[Any, ...]:
        from sklearn.model_selection import train_test_split

        stratify = y if self._classifier else None
        if sample_weight is None:
            x_fit, x_val, y_fit, y_val = train_test_split(
                X, y, test_size=self.validation_fraction, random_state=self.random_state, stratify=stratify)
            return x_fit, x_val, y_fit, y_val, None
        x_fit, x_val, y_fit, y_val, w_fit, _ = train_test_split(
            X, y, sample_weight, test_size=self.validation_fraction, random_state=self.random_state,
            stratify=stratify)
        return x_fit, x_val, y_fit, y_val, w_fit

    def _rounds(self, rounds: int | None) -> int | None:
        # LightGBM predicts with its best round after early stopping; here every round, unless asked
        return self.n_iter_ if rounds is None else int(rounds)

    def predict(self, X: Any, rounds: int | None = None) -> np.ndarray:
        return np.asarray(self.model_.predict(np.asarray(X), num_iteration=self._rounds(rounds)))


class BoostedTreesClassifier(ClassifierMixin, _BoostedTrees):
    """LightGBM's classifier under HistGradientBoostingClassifier's parameter names (module docstring)."""

    _classifier = True

    def __init__(
        self,
        *,
        learning_rate: float = 0.1,
        max_iter: int = 100,
        max_leaf_nodes: int | None = 31,
        max_depth: int | None = None,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        max_features: float = 1.0,
        max_bins: int = 255,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-7,
        random_state: int | None = None,
        class_weight: Any = None,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate, max_iter=max_iter, max_leaf_nodes=max_leaf_nodes, max_depth=max_depth,
            min_samples_leaf=min_samples_leaf, l2_regularization=l2_regularization, max_features=max_features,
            max_bins=max_bins, early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, random_state=random_state,
        )
        #: "balanced", ``{class: weight}`` or None: weighs each class's rows in the training loss
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None, X_val: Any = None, y_val: Any = None,
            sample_weight_val: Any = None) -> BoostedTreesClassifier:
        super().fit(X, y, sample_weight, X_val, y_val, sample_weight_val)
        self.classes_ = np.asarray(self.model_.classes_)
        return self

    def predict_proba(self, X: Any, rounds: int | None = None) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(np.asarray(X), num_iteration=self._rounds(rounds)))


class BoostedTreesRegressor(RegressorMixin, _BoostedTrees):
    """LightGBM's regressor under HistGradientBoostingRegressor's parameter names (module docstring)."""
