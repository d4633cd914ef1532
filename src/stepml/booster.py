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
  of the rows is held out, as HistGradientBoosting does. Unlike it, the model then keeps the trees
  up to its best round only (LightGBM's way): ``n_iter_`` is that round.
* ``predict`` / ``predict_proba`` take ``rounds``: the predictions after the first ``rounds``
  rounds (a best round where early stopping boosted on past it).
* Each distinct value of a column gets its own bin up to ``max_bins`` (LightGBM's
  ``min_data_in_bin`` = 1; its default 3 merges rare values), one thread
  (:data:`~stepml.recipes.OPENMP_THREADS`), deterministic, histograms built row by row
  (:data:`ROW_WISE`).
* ``categorical_features`` (indices or a mask of the matrix's columns) are split as LightGBM's
  categories: a node sends a set of codes left, found by ordering the codes by their rows'
  gradients at that node (LightGBM's defaults: ``max_cat_threshold`` 32, ``cat_smooth`` 10,
  ``min_data_per_group`` 100); a code it never saw, a negative one or a missing value goes right.
  The ONNX export tests set membership (ai.onnx.ml 5's ``BRANCH_MEMBER``).
* A classifier's leaf moves a score by at most :data:`MAX_LEAF_LOGITS` log-odds a round (before the
  learning rate): with many weighted classes, near-zero hessians made unbounded Newton steps.
* A regressor's ``output_offset`` (not HistGradientBoosting's) is added to the trees' summed score
  before the loss's link (a log link's prediction is then multiplied by its ``exp``): the ``auto``
  recipe's smearing of a log target (:mod:`stepml.target_transform`). The ONNX export adds it too.

The fitted LightGBM model is :attr:`model_` (``lightgbm.LGBMClassifier`` / ``LGBMRegressor``):
the ONNX export converts it (:mod:`stepml.onnx_export`).
"""

from __future__ import annotations

from numbers import Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

#: LightGBM's most leaves a tree may have (HistGradientBoosting's ``max_leaf_nodes=None``).
MAX_LEAVES = 131_072
#: Rows above which ``early_stopping="auto"`` stops early (HistGradientBoosting's rule).
AUTO_EARLY_STOPPING_ROWS = 10_000
#: OpenMP threads a fit uses (see :data:`stepml.recipes.OPENMP_THREADS` for why one). Measured with
#: LightGBM too (nyc_weather, 200 rounds): 2.7 s on one thread, 2.6 s on two, and 31 s each when
#: two such fits ran at once on the 2 cores (spin-waiting threads, as HistGradientBoosting's did).
THREADS = 1
#: Largest log-odds a classifier's leaf may move a score by in one round, before the learning
#: rate (LightGBM's ``max_delta_step``). A leaf's value is its Newton step, minus the gradients'
#: sum over the hessians'; once a class is predicted near 0 or 1 its hessians are near zero, and
#: with many classes, class weights and no L2 a step can run to hundreds: airports' state from its
#: coordinates (vega_datasets, 56 states, 2,691 rows, auto's rate 0.2) reached a validation log
#: loss of 30 after 20 rounds, and the test's balanced accuracy was 0.08. Capped at 10 it boosts
#: to 0.95 accuracy as a rate of 0.05 does; a step of 10 log-odds is already a 22,000-fold change.
MAX_LEAF_LOGITS = 10.0
#: LightGBM's histograms row by row (``force_row_wise``) rather than column by column: with
#: ``deterministic`` one of the two must be fixed (LightGBM's auto-choice times both, so a fit could
#: differ from run to run), and on one thread row-wise was as fast or faster on the bench's tables
#: (200 rounds, best of 3: randhie_raw 0.56x, seattle_weather 0.73x, digits 0.79x, nyc_weather 0.80x,
#: flights 0.92x, california_housing 0.97x the column-wise time); ``auto``'s fits in
#: bench/bench_models.py: the same models, nyc_weather 10.6 -> 8.0 s, flights 40.4 -> 34.5 s,
#: seattle_weather 2.1 -> 1.6 s.
ROW_WISE = True


def _constraints(hgb: Any, names: list[str]) -> dict[str, Any]:
    """HistGradientBoosting's own declared constraints for the parameters kept (what
    :func:`stepml.recipes.check_params` checks a config's ``params`` against)."""
    return {name: hgb._parameter_constraints[name] for name in names if name in hgb._parameter_constraints}


#: LightGBM's objective for each of HistGradientBoostingRegressor's losses.
REGRESSION_OBJECTIVES = {"squared_error": "regression", "absolute_error": "regression_l1", "gamma": "gamma",
                         "poisson": "poisson", "quantile": "quantile"}
#: The losses whose LightGBM objective predicts ``exp`` of the trees' score (the keys of
#: :data:`stepml.validation.LOG_LINK_LOSSES`, which says what target each needs).
LOG_LINK_LOSSES = frozenset({"poisson", "gamma"})


class _BoostedTrees(BaseEstimator):
    _classifier = False
    _parameter_constraints: ClassVar[dict[str, Any]] = {}

    def _keep(self, parameters: dict[str, Any]) -> None:
        """Store each ``__init__`` parameter as an attribute of its name (scikit-learn's convention)."""
        for name, value in parameters.items():
            if name != "self":
                setattr(self, name, value)

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
            "force_row_wise": ROW_WISE,
            "force_col_wise": not ROW_WISE,
            "verbose": -1,
        }
        if self._classifier:
            settings["max_delta_step"] = MAX_LEAF_LOGITS
            return lightgbm.LGBMClassifier(class_weight=self._code_weights(), **settings)
        loss = getattr(self, "loss", "squared_error")
        if loss == "quantile":
            settings["alpha"] = self.quantile
        return lightgbm.LGBMRegressor(objective=REGRESSION_OBJECTIVES[loss], **settings)

    def fit(self, X: Any, y: Any, sample_weight: Any = None, X_val: Any = None, y_val: Any = None,
            sample_weight_val: Any = None) -> Any:
        import lightgbm
        from sklearn.utils.validation import check_X_y

        self._validate_params()  # scikit-learn's check of every parameter against its constraints
        # as HistGradientBoosting checks them: missing features are fine, a target must be finite
        X, y = check_X_y(X, y, dtype="numeric", ensure_all_finite="allow-nan", y_numeric=not self._classifier)
        try:
            self._fit_lightgbm(X, y, sample_weight, X_val, y_val, sample_weight_val)
        except lightgbm.basic.LightGBMError as exc:
            # what LightGBM refuses mid-fit (a target outside the loss's range, ...) is this data's
            # problem, as scikit-learn's ValueError is: the caller explains it, not a crash
            raise ValueError(f"LightGBM: {exc}") from exc
        self.n_features_in_ = int(X.shape[1])
        return self

    def _fit_lightgbm(self, X: Any, y: Any, sample_weight: Any, X_val: Any, y_val: Any,
                      sample_weight_val: Any) -> None:
        import lightgbm

        model = self._lightgbm()
        categories = self._categories(int(X.shape[1]))
        # "auto", as HistGradientBoosting reads it: early stopping on more than 10,000 rows
        stopping = len(X) > AUTO_EARLY_STOPPING_ROWS if self.early_stopping == "auto" else bool(self.early_stopping)
        if not stopping:
            model.fit(X, y, sample_weight=sample_weight, categorical_feature=categories)
        else:
            if X_val is None:
                X, X_val, y, y_val, sample_weight = self._held_out(X, y, sample_weight)
            losses: dict[str, Any] = {}
            model.fit(
                X, y, sample_weight=sample_weight, categorical_feature=categories, eval_X=(np.asarray(X_val),), eval_y=(np.asarray(y_val),),
                eval_sample_weight=None if sample_weight_val is None else [np.asarray(sample_weight_val)],
                callbacks=[lightgbm.early_stopping(int(self.n_iter_no_change), first_metric_only=True,
                                                   verbose=False, min_delta=max(float(self.tol), 0.0)),
                           lightgbm.record_evaluation(losses)],
            )
            curve = next(iter(losses["valid_0"].values()))
            self.validation_score_ = -np.asarray([np.inf, *curve], dtype=float)
        self.model_ = model
        self.n_iter_ = int(model.booster_.current_iteration())

    def _categories(self, columns: int) -> list[int] | str:
        """The columns LightGBM splits as categories: ``categorical_features``' indices (or its
        boolean mask's); ``"auto"`` (none, for a matrix) when it is None or ``"from_dtype"``, which
        a matrix has no dtypes for (:func:`stepml.recipes.build_pipeline` replaces it by the
        indices of the text columns' codes)."""
        if self.categorical_features is None or isinstance(self.categorical_features, str):
            return "auto"
        chosen = np.asarray(self.categorical_features)
        if chosen.dtype == bool:
            if len(chosen) != columns:
                raise ValueError(f"categorical_features' mask has {len(chosen)} entries for {columns} columns")
            chosen = np.flatnonzero(chosen)
        indices = [int(index) for index in chosen.ravel()]
        if any(not 0 <= index < columns for index in indices):
            raise ValueError(f"categorical_features holds a column index outside 0..{columns - 1}: {indices}")
        return indices or "auto"

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
        loss: str = "log_loss",
        learning_rate: float = 0.1,
        max_iter: int = 100,
        max_leaf_nodes: int | None = 31,
        max_depth: int | None = None,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        max_features: float = 1.0,
        max_bins: int = 255,
        early_stopping: bool | str = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-7,
        random_state: int | None = None,
        class_weight: Any = None,
        categorical_features: Any = None,
    ) -> None:
        self._keep(locals())

    def fit(self, X: Any, y: Any, sample_weight: Any = None, X_val: Any = None, y_val: Any = None,
            sample_weight_val: Any = None) -> BoostedTreesClassifier:
        # LightGBM is fitted on the codes 0..K-1 of the sorted labels (its validation set too, which
        # it would not encode itself); classes_ are the labels, as scikit-learn's classifiers have them
        self.classes_ = np.unique(np.asarray(y))
        codes = np.searchsorted(self.classes_, np.asarray(y))
        val_codes = None if y_val is None else self._codes(np.asarray(y_val))
        super().fit(X, codes, sample_weight, X_val, val_codes, sample_weight_val)
        return self

    def _codes(self, labels: np.ndarray) -> np.ndarray:
        codes = np.searchsorted(self.classes_, labels)
        if np.any(codes >= len(self.classes_)) or np.any(self.classes_[np.minimum(codes, len(self.classes_) - 1)] != labels):
            raise ValueError("y_val holds a class that the training rows do not")
        return codes

    def _code_weights(self) -> Any:
        """``class_weight`` for LightGBM: a mapping keyed by the labels becomes one keyed by their
        codes. A config's mapping comes from YAML or JSON, whose keys may be text where the labels
        are numbers (``{"1": 3}`` for the label 1): each key is matched to the label it spells, and
        keys that name no label are dropped (validation has already refused them)."""
        if not isinstance(self.class_weight, dict):
            return self.class_weight
        index = {str(label): code for code, label in enumerate(self.classes_.tolist())}
        return {index[str(label)]: weight for label, weight in self.class_weight.items() if str(label) in index}

    def predict(self, X: Any, rounds: int | None = None) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X, rounds), axis=1)]

    def predict_proba(self, X: Any, rounds: int | None = None) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(np.asarray(X), num_iteration=self._rounds(rounds)))


class BoostedTreesRegressor(RegressorMixin, _BoostedTrees):
    """LightGBM's regressor under HistGradientBoostingRegressor's parameter names (module docstring);
    ``loss`` is one of :data:`REGRESSION_OBJECTIVES` (``quantile``: the ``quantile`` to fit)."""

    def __init__(
        self,
        *,
        loss: str = "squared_error",
        quantile: float | None = None,
        learning_rate: float = 0.1,
        max_iter: int = 100,
        max_leaf_nodes: int | None = 31,
        max_depth: int | None = None,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        max_features: float = 1.0,
        max_bins: int = 255,
        early_stopping: bool | str = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-7,
        random_state: int | None = None,
        categorical_features: Any = None,
        output_offset: float = 0.0,
    ) -> None:
        self._keep(locals())

    def fit(self, X: Any, y: Any, sample_weight: Any = None, X_val: Any = None, y_val: Any = None,
            sample_weight_val: Any = None) -> Any:
        if not np.isfinite(self.output_offset):
            raise ValueError(f"output_offset must be a finite number, got {self.output_offset!r}")
        return super().fit(X, y, sample_weight, X_val, y_val, sample_weight_val)

    def predict(self, X: Any, rounds: int | None = None) -> np.ndarray:
        if not self.output_offset:
            return super().predict(X, rounds)
        raw = self.model_.predict(np.asarray(X), num_iteration=self._rounds(rounds), raw_score=True)
        shifted = np.asarray(raw, dtype=np.float64) + float(self.output_offset)
        return np.exp(shifted) if self.loss in LOG_LINK_LOSSES else shifted


# HistGradientBoosting's own constraints of the parameters each booster takes
BoostedTreesClassifier._parameter_constraints = _constraints(
    HistGradientBoostingClassifier, BoostedTreesClassifier._get_param_names())
BoostedTreesRegressor._parameter_constraints = {
    **_constraints(HistGradientBoostingRegressor, BoostedTreesRegressor._get_param_names()),
    "output_offset": [Real],
}
