"""A second model family for small tables: a regularised linear model, or its blend with the trees.

Boosted trees draw a relation as steps. On a few hundred rows a smooth or monotone one (next
year's rate from this year's, a tumour's class from a dozen correlated measurements) is drawn
better by a straight line: the trees' steps are as wide as their 20-row leaves. So on tables of at
most :data:`MAX_TRAINING_ROWS` training rows the ``auto`` recipe (:mod:`stepml.auto_selection`)
also fits, on the same rows it holds out to choose the boosting rounds (a fifth, or each fold of
a small table's cross-validation):

* ``linear``: median-imputed, standardised numbers and one-hot text into ``RidgeCV`` (regression:
  its penalty chosen by efficient leave-one-out on the rows it is fitted on) or
  ``LogisticRegression`` (classification, classes weighted as the trees weight them; its ``C``
  the one of :data:`LOGISTIC_CS` with the lowest validation log loss — one fit per value, where
  ``LogisticRegressionCV``'s folds cost 10-100x more);
* ``blend``: the average of the trees' and the linear model's predictions (class probabilities);
* ``forest`` (at most :data:`FOREST_MAX_ROWS` training rows): extremely randomised trees
  (``ExtraTrees``, :data:`FOREST_TREES` of them — fewer when they would hold more than
  :data:`FOREST_MAX_NODES` nodes — grown in full on the booster's own columns), whose
  averaged random cuts draw a smooth curve on a few hundred rows where a booster's 20-row leaves
  draw steps (a quarterly series' unemployment: RMSE 0.32 vs the booster's 0.44; aircraft
  engines from their model and seats: balanced accuracy 0.99 vs 0.82).

It keeps the family whose validation predictions score best by the run's primary metric (ties:
the smoother loss decides, then the trees). Whatever wins is still one scikit-learn ``Pipeline``
(``ColumnTransformer`` + estimator) that skl2onnx converts in float64 and the serving path runs
unchanged; a blend is a ``VotingRegressor`` / soft ``VotingClassifier`` of two pipelines, each
picking its own columns out of the shared transformer's output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from stepml.config import DatasetConfig

#: The families, the trees (the recipe's booster alone) first: it wins a tie.
TREES, LINEAR, BLEND, FOREST = "trees", "linear", "blend", "forest"
FAMILIES = (TREES, LINEAR, BLEND, FOREST)
#: Tables with more training rows than this keep the trees without a comparison: there the trees
#: win anyway (measured: California, randhie) and the logistic fits would cost minutes.
MAX_TRAINING_ROWS = 20_000
#: Nor is a linear model offered when one-hot text would be wider than this many columns (the
#: encoded matrix is dense: 20,000 rows x 1,000 columns is 160 MB).
MAX_ONE_HOT_COLUMNS = 1_000
#: Ridge penalties RidgeCV chooses from (efficient leave-one-out), on standardised features.
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
#: Inverse penalties of the logistic model, one chosen by validation log loss.
LOGISTIC_CS = (0.01, 0.1, 1.0, 10.0, 100.0)
LOGISTIC_MAX_ITER = 500
#: The forest is offered on tables of at most this many training rows: its fully grown trees hold
#: about two nodes per training row each, so the graph grows with the rows (200 trees on 2,658
#: rows of noise: 0.8M nodes, a 52 MB graph that onnxruntime loads in 1 s; tables with a signal
#: stop splitting sooner).
FOREST_MAX_ROWS = 3_000
#: Trees of the forest. Measured (bench/bench_models.py tables, test scores, 100 -> 200 trees):
#: planes 0.952 -> 0.994 balanced accuracy, digits 0.9865 -> 0.9896, macrodata RMSE 0.319 -> 0.318.
FOREST_TREES = 200
#: Trees of the forests fitted only to choose (each fold's, tune's validation fit); the final fit
#: grows :data:`FOREST_TREES`. Measured on the 12 bench tables of at most 3,000 rows: the same
#: family and test score on all 12 with 100 as with 200, and with 50 as with 100 (three folds);
#: a tree costs ~1-3 ms of joblib and Python even on 100 rows (on Adult-like text-heavy rows the
#: 100-tree fold forests were half of a 1,000-row table's choice; 50 saves 0.2-0.8 s a small table).
FOREST_CHOICE_TREES = 50
#: Most nodes the final forest keeps (:func:`keep_node_budget`): its trees are grown in full, so
#: on rows without much signal each holds about two nodes per training row. 200 trees on 2,658
#: rows of noise held 0.8M nodes, a 52 MB graph that onnxruntime loaded in 1 s, against the API's
#: 0.5 s cold start. The budget is two nodes per row of the largest table the forest is offered on
#: (:data:`FOREST_MAX_ROWS`) for each of the :data:`FOREST_CHOICE_TREES` trees it was validated
#: with, so the final forest never holds fewer trees than the one that won the choice. Measured:
#: the 2,658 rows of noise keep 74 trees (15 MB, loaded in 0.26 s), 3,000 rows of a noisy
#: regression 50 (12 MB, 0.20 s); the bench tables' forests are well under it (digits 156k nodes,
#: 14.7 MB, loaded in 0.2 s; planes 65k; macrodata 55k) and keep all :data:`FOREST_TREES` trees.
FOREST_MAX_NODES = 2 * FOREST_MAX_ROWS * FOREST_CHOICE_TREES


def suits(train: pd.DataFrame, schema: list[dict[str, Any]]) -> bool:
    """Whether the linear family is worth comparing on ``train``: few enough rows and categories."""
    from stepml.dateparts import model_features

    if len(train) > MAX_TRAINING_ROWS:
        return False
    text = [f["name"] for f in model_features(schema) if f["kind"] == "categorical" and f["name"] in train]
    return sum(int(train[name].nunique()) for name in text) <= MAX_ONE_HOT_COLUMNS


def forest_estimator(config: DatasetConfig, task: str, trees: int | None = None) -> Any:
    """The untrained forest of ``trees`` trees (:data:`FOREST_TREES`; classes weighted as the
    recipe's trees weight them), seeded by ``split.seed``."""
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    from stepml.recipes import CLASS_WEIGHTED_METRICS

    count = trees or FOREST_TREES
    if task == "regression":
        return ExtraTreesRegressor(n_estimators=count, random_state=config.split.seed, n_jobs=1)
    weights = "balanced" if config.metric_for(task) in CLASS_WEIGHTED_METRICS else None
    return ExtraTreesClassifier(n_estimators=count, class_weight=weights, random_state=config.split.seed, n_jobs=1)


def keep_node_budget(forest: Any) -> int:
    """Keep the first trees of a fitted forest whose nodes add up to at most
    :data:`FOREST_MAX_NODES` (at least one); returns how many it kept. The trees of an
    ``ExtraTrees`` forest are grown independently and averaged, so its first ``k`` trees are a
    ``k``-tree forest: predictions, and the graph skl2onnx makes of it, follow the trees it keeps."""
    nodes = np.cumsum([tree.tree_.node_count for tree in forest.estimators_])
    keep = max(1, int(np.searchsorted(nodes, FOREST_MAX_NODES, side="right")))
    if keep < len(forest.estimators_):
        forest.estimators_ = forest.estimators_[:keep]
        forest.n_estimators = keep
    return len(forest.estimators_)


def forest_output(config: DatasetConfig, task: str, x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray,
                  classes: np.ndarray | None) -> np.ndarray | None:
    """The forest (:data:`FOREST_CHOICE_TREES` trees) fitted on the booster's columns of the fitting
    rows, and its predictions for the validation rows' (class probabilities over ``classes``; None
    when it missed one)."""
    model = forest_estimator(config, task, FOREST_CHOICE_TREES).fit(x_fit, y_fit)
    if task == "regression":
        return np.asarray(model.predict(x_val), dtype=float)
    if classes is None or list(model.classes_) != list(classes):
        return None
    return np.asarray(model.predict_proba(x_val))


def linear_estimator(config: DatasetConfig, task: str, params: dict[str, Any] | None = None) -> Any:
    """The untrained linear model: RidgeCV (``Ridge`` when ``params`` fix its ``alpha``, as
    :mod:`stepml.tuning` does), or LogisticRegression (classes weighted as the recipe's trees
    weight them; ``params``: its chosen ``C``)."""
    from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV

    from stepml.recipes import CLASS_WEIGHTED_METRICS

    if task == "regression":
        return Ridge(**params) if params else RidgeCV(alphas=RIDGE_ALPHAS)
    weights = "balanced" if config.metric_for(task) in CLASS_WEIGHTED_METRICS else None
    return LogisticRegression(max_iter=LOGISTIC_MAX_ITER, class_weight=weights, **(params or {}))


def _linear_parts(schema: list[dict[str, Any]]) -> list[tuple[str, Any, list[str]]]:
    """One-hot text (an unseen category: all zeros) and median-imputed, standardised numbers. A
    column missing in every training row is kept (as zeros), so the graph's width stays the schema's."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from stepml.dateparts import model_features

    features = model_features(schema)
    numeric = [f["name"] for f in features if f["kind"] == "numeric"]
    categorical = [f["name"] for f in features if f["kind"] == "categorical"]
    parts: list[tuple[str, Any, list[str]]] = []
    if categorical:
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    if numeric:
        numbers = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                            ("scale", StandardScaler())])
        parts.append(("numeric", numbers, numeric))
    return parts


def build_pipeline(
    schema: list[dict[str, Any]], task: str, config: DatasetConfig, family: str,
    trees: Pipeline | None = None, features: pd.DataFrame | None = None,
    linear_params: dict[str, Any] | None = None, linear_weight: float | None = None,
) -> Pipeline:
    """The untrained pipeline of ``family``; ``trees``: the recipe's untrained pipeline (returned
    as it is for :data:`TREES`; a voting ensemble of boosters, as :mod:`stepml.tuning` fits, joins
    a blend member by member); ``features``: the training rows' model frame (a blend's members
    pick their columns by position, which the one-hot encoder's categories decide);
    ``linear_params``: the linear model's chosen settings (:func:`choose_family`); ``linear_weight``:
    the linear model's share of a blend (None: an even average of the trees and the line)."""
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import VotingClassifier, VotingRegressor
    from sklearn.pipeline import Pipeline

    if family == LINEAR:
        columns = ColumnTransformer(_linear_parts(schema), remainder="drop")
        return Pipeline([("columns", columns), ("model", linear_estimator(config, task, linear_params))])
    if family not in (TREES, BLEND, FOREST) or trees is None or (family == BLEND and features is None):
        raise ValueError(f"model family {family!r} needs the trees' pipeline (and a blend the training rows)")
    if family == TREES:
        return trees
    if family == FOREST:  # the booster's columns (text as ordinal codes, median-imputed numbers)
        return Pipeline([("columns", trees.named_steps["columns"]), ("model", forest_estimator(config, task))])
    parts = {"trees": list(trees.named_steps["columns"].transformers), "linear": _linear_parts(schema)}
    columns = ColumnTransformer(
        [(f"{member}_{name}", transformer, used) for member, listed in parts.items()
         for name, transformer, used in listed],
        remainder="drop",
    )
    spans = clone(columns).fit(features).output_indices_
    boosters = trees.named_steps["model"]
    # a tuned ensemble's boosters become members of their own (a voting estimator inside another
    # does not convert to ONNX), sharing the trees' share of the blend evenly
    named = ([(f"trees{index}", model) for index, (_, model) in enumerate(boosters.estimators)]
             if isinstance(boosters, (VotingClassifier, VotingRegressor)) else [("trees", boosters)])
    models = {"trees": named, "linear": [("linear", linear_estimator(config, task, linear_params))]}
    members = []
    for member, listed in parts.items():
        positions = [i for name, _, _ in listed for i in range(*spans[f"{member}_{name}"].indices(10**9))]
        for label, model in models[member]:
            select = ColumnTransformer([("keep", "passthrough", positions)], remainder="drop")
            members.append((label, Pipeline([("select", select), ("model", model)])))
    weights = None
    if linear_weight is not None:
        if not 0.0 < linear_weight < 1.0:
            raise ValueError(f"a blend's linear_weight must be between 0 and 1 (exclusive), got {linear_weight}")
        # an array: skl2onnx normalises it with .sum()
        weights = np.array([(1.0 - linear_weight) / len(named)] * len(named) + [linear_weight])
    if task == "classification":
        # flatten_transform=False: skl2onnx converts only the unflattened soft-voting layout
        voting = VotingClassifier(members, voting="soft", weights=weights, flatten_transform=False)
        return Pipeline([("columns", columns), ("model", voting)])
    return Pipeline([("columns", columns), ("model", VotingRegressor(members, weights=weights))])


def linear_outputs(
    schema: list[dict[str, Any]], task: str, config: DatasetConfig, features: pd.DataFrame,
    validating: pd.DataFrame, y_fit: np.ndarray, classes: np.ndarray | None,
) -> list[tuple[dict[str, Any], np.ndarray]] | None:
    """The linear model fitted on the fitting rows' model frame ``features``
    (:func:`stepml.preprocessing.to_model_frame`; on the target as it is) and its predictions for
    the validation rows' ``validating``, once per setting: ``[(settings, predictions)]`` (each value of
    :data:`LOGISTIC_CS` for classification, class probabilities over ``classes``; one RidgeCV for
    regression). None when it cannot be fitted or missed one of ``classes``: the trees are kept."""
    import logging
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    settings: list[dict[str, Any]] = [{}] if task == "regression" else [{"C": c} for c in LOGISTIC_CS]
    outputs: list[tuple[dict[str, Any], np.ndarray]] = []
    try:
        # one BLAS thread: lbfgs with several threads on a busy 2-core machine is 10x slower
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline = build_pipeline(schema, task, config, LINEAR)
            columns, model = pipeline.named_steps["columns"], pipeline.named_steps["model"]
            x_fit, x_val = columns.fit_transform(features), columns.transform(validating)
            if task == "regression":
                return [({}, np.asarray(model.fit(x_fit, y_fit).predict(x_val), dtype=float))]
            assert classes is not None
            # each C starts from the last one's coefficients (the same optimum, fewer lbfgs steps)
            model.set_params(warm_start=True)
            for params in settings:
                model.set_params(**params).fit(x_fit, y_fit)
                if list(model.classes_) != list(classes):  # a class missing from the fitting rows
                    return None
                outputs.append((params, model.predict_proba(x_val)))
    except (ValueError, TypeError, ArithmeticError) as exc:
        logging.getLogger(__name__).info("linear family not fitted", extra={"reason": str(exc)[:300]})
        return None
    return outputs


def choose_family(
    task: str, config: DatasetConfig, metric: str, higher_is_better: bool, y_val: np.ndarray,
    trees_output: np.ndarray, linear: list[tuple[dict[str, Any], np.ndarray]], classes: np.ndarray | None,
    blend: bool = True, forest: np.ndarray | None = None,
) -> tuple[str, dict[str, float], dict[str, Any]]:
    """The family whose validation predictions score best, each family's score, and the linear
    model's chosen settings (``{"C": ...}`` for the logistic model: the lowest validation log loss).

    ``y_val``: the validation rows' target (all training rows' when the choice is cross-validated:
    then each prediction below is out of fold); ``trees_output``: the trees' predictions for them
    (class probabilities over ``classes``, or values on the target's scale); ``linear``: the linear
    model's, a setting at a time (:func:`linear_outputs`). ``blend``: offer the blend (not for
    trees fitted on a log target: a blend's member cannot carry the transform into the ONNX graph).
    ``forest``: the forest's predictions (:func:`forest_output`; None: not offered). An empty
    ``linear`` (the linear model could not be fitted) offers neither it nor the blend.
    """
    outputs = {TREES: trees_output}
    chosen: dict[str, Any] = {}
    if linear:
        chosen, linear_output = min(linear, key=lambda pair: validation_loss(task, y_val, pair[1], classes, config))
        outputs[LINEAR] = linear_output
        if blend:
            outputs[BLEND] = (trees_output + linear_output) / 2
    if forest is not None:
        outputs[FOREST] = forest
    scores = {family: validation_score(task, metric, y_val, output, classes) for family, output in outputs.items()}
    losses = {family: validation_loss(task, y_val, output, classes, config) for family, output in outputs.items()}
    sign = 1.0 if higher_is_better else -1.0
    best = max(outputs, key=lambda family: (sign * scores[family], -losses[family], -FAMILIES.index(family)))
    return best, {family: round(float(score), 6) for family, score in scores.items()}, chosen


def validation_score(task: str, metric: str, y_val: np.ndarray, output: np.ndarray, classes: np.ndarray | None) -> float:
    from stepml.evaluation import metric_value

    if task == "classification":
        assert classes is not None
        return float(metric_value(task, metric, y_val, classes[np.argmax(output, axis=1)], output, classes))
    return float(metric_value(task, metric, y_val, output))


def validation_loss(task: str, y_val: np.ndarray, output: np.ndarray, classes: np.ndarray | None, config: DatasetConfig) -> float:
    """The smooth loss that breaks a tie of the primary metric (on 30 rows accuracy often ties):
    log loss (class-weighted when the classes are), or squared error."""
    if task == "regression":
        return float(np.mean((np.asarray(output, dtype=float) - y_val) ** 2))
    from sklearn.metrics import log_loss
    from sklearn.utils.class_weight import compute_sample_weight

    from stepml.recipes import CLASS_WEIGHTED_METRICS

    weights = compute_sample_weight("balanced", y_val) if config.metric_for(task) in CLASS_WEIGHTED_METRICS else None
    return float(log_loss(y_val, np.clip(output, 1e-15, 1.0), labels=classes, sample_weight=weights))
