"""Build and fit the model: one scikit-learn Pipeline (ColumnTransformer + estimator) per recipe.

The fitted Pipeline is the artifact: preprocessing and model travel together, so training and
serving cannot drift apart. Every step is a stock scikit-learn transformer that skl2onnx converts
(SimpleImputer, OrdinalEncoder, OneHotEncoder, MinMaxScaler, StandardScaler, ColumnTransformer),
in front of an estimator with an ONNX converter; no custom classes, so the pickle loads with
scikit-learn alone. Missing numbers are imputed *inside* the pipeline (skl2onnx's trees route NaN
differently from scikit-learn's); missing text arrives as the empty string, a category of its own
(:data:`stepml.preprocessing.MISSING_CATEGORY`). A date column enters as its numeric parts (year,
month...), derived from its strings by :mod:`stepml.dateparts` in front of the pipeline, as serving
derives them in front of the ONNX graph; they are imputed like any number.

Recipes (``config.recipe``):

``auto`` (default)
    Median imputation, ordinal codes for text (trees split codes well; one-hot would only widen
    the matrix), scikit-learn ``HistGradientBoosting`` at learning rate 0.05, its rounds (and a
    log target for a skewed regression) chosen on a validation split by
    :mod:`stepml.auto_selection` (400 rounds where it cannot choose).
    Chosen by measurement over LightGBM and other settings (bench/results/models.json): it meets the
    targets with no extra library in the Lambda layer (LightGBM needs the system's libgomp, absent
    from the Lambda runtime) and converts with skl2onnx directly. Classes are weighted
    (``class_weight="balanced"``) when the primary metric is balanced accuracy or F1, the metrics
    that reward the minority class; accuracy and ROC AUC are best served unweighted. Balanced
    accuracy is also the default metric when a class is under 10 % of the rows and the config
    names none (:meth:`stepml.config.DatasetConfig.metric_for`). No decision threshold is tuned,
    so serving needs nothing beyond the pipeline.
``seed-a``
    Rows with missing values dropped (in :func:`stepml.preprocessing.clean`), ordinal encoding,
    min-max scaling, a 100-tree RandomForest (classes weighted as in ``auto``).
``seed-b``
    IQR outlier removal on the training split only (:func:`remove_outliers`), one-hot encoding,
    standard scaling, XGBoost with its defaults. Regression only (XGBoost's classifier needs labels
    0..K-1, which would make the pipeline's classes differ from the user's). Needs ``xgboost``; where
    it is not installed (the Lambda layer leaves it out for size) the run fails with a ConfigError.

Training runs in threads only (forests' ``n_jobs`` threads; HistGradientBoosting's OpenMP, held to
:data:`OPENMP_THREADS`): no process pools, which need /dev/shm, absent on Lambda.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from stepml.config import DatasetConfig
from stepml.dateparts import model_features
from stepml.errors import ConfigError, DataError, listing
from stepml.preprocessing import class_labels, to_model_frame

#: The auto recipe's estimator settings, chosen in bench/bench_models.py (config ``params`` override).
AUTO_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 400,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "early_stopping": False,
}
#: Metrics that reward the minority classes: the auto recipe weights classes when judged by them.
CLASS_WEIGHTED_METRICS = ("balanced_accuracy", "f1")
#: Rows outside [Q1 - k*IQR, Q3 + k*IQR] in any numeric column are outliers (seed B).
IQR_FACTOR = 1.5
#: OpenMP threads while fitting. HistGradientBoosting with two OpenMP threads is ~1.5x faster on an
#: idle 2-core machine but 10-40x *slower* on a busy one (spin-waiting threads: Adult 98 s vs 8 s
#: measured here; a 150-row iris fit 5-10 s vs 0.2 s), and the offline stack runs several
#: executions in threads of one process. One thread keeps every default fit well within 60 s.
OPENMP_THREADS = 1


def estimator(config: DatasetConfig, task: str, params: dict[str, Any] | None = None) -> Any:
    """The recipe's untrained estimator, with ``config.params`` (or ``params``) applied.

    Raises ConfigError naming any parameter the estimator does not have.
    """
    model: Any
    if config.recipe == "auto":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        defaults = {**AUTO_PARAMS, "random_state": config.split.seed}
        if task == "classification":
            if config.metric_for(task) in CLASS_WEIGHTED_METRICS:
                defaults["class_weight"] = "balanced"
            model = HistGradientBoostingClassifier(**defaults)
        else:
            model = HistGradientBoostingRegressor(**defaults)
    elif config.recipe == "seed-a":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        if task == "classification":
            weights = "balanced" if config.metric_for(task) in CLASS_WEIGHTED_METRICS else None
            model = RandomForestClassifier(n_estimators=100, random_state=config.split.seed, n_jobs=-1,
                                           class_weight=weights)
        else:
            model = RandomForestRegressor(n_estimators=100, random_state=config.split.seed, n_jobs=-1)
    elif config.recipe == "seed-b":
        if task != "regression":
            raise ConfigError(
                "config recipe 'seed-b' (XGBoost) is a regression recipe; use auto or seed-a for "
                "classification"
            )
        try:
            from xgboost import XGBRegressor
        except ImportError:
            raise ConfigError(
                "config recipe 'seed-b' needs the xgboost package, which is not installed here "
                "(the Lambda layer leaves it out for size); use recipe auto"
            ) from None
        model = XGBRegressor(random_state=config.split.seed, n_jobs=-1, tree_method="hist")
    else:  # pragma: no cover - the config schema allows only the recipes above
        raise ConfigError(f"unknown recipe {config.recipe!r}")
    chosen = config.params if params is None else params
    unknown = sorted(set(chosen) - set(model.get_params(deep=False)))
    if unknown:
        raise ConfigError(
            f"config params has parameter(s) {', '.join(unknown)} that {type(model).__name__} "
            f"(recipe {config.recipe}) does not take; it takes: {', '.join(sorted(model.get_params(deep=False)))}"
        )
    try:
        model.set_params(**chosen)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config params: {exc}") from None
    return model


def check_params(config: DatasetConfig, task: str, classes: list[Any] | None = None) -> None:
    """Fail early (at validation) on params, or a recipe, that training would reject.

    Each value in ``config.params`` is checked against the estimator's own declared constraints
    (scikit-learn's ``_parameter_constraints``, what ``fit`` checks first), so ``learning_rate: -1``
    fails before any data is read, with every bad key named. ``classes``: the target's labels, to
    check that a ``class_weight`` mapping names only classes that exist.
    """
    model = estimator(config, task)
    problems = [problem for name, value in config.params.items()
                if (problem := _param_problem(model, name, value)) is not None]
    weights = config.params.get("class_weight")
    if isinstance(weights, dict) and classes is not None:
        known = {str(c) for c in classes}
        unknown = [k for k in weights if str(k) not in known]
        if unknown:
            hint = (" (YAML reads an unquoted yes/no/true/false as a boolean: quote the class name)"
                    if any(isinstance(k, bool) for k in unknown) else "")
            problems.append(
                f"params.class_weight names class(es) {listing(map(repr, unknown))} that the target does not "
                f"have; its classes are {listing(map(repr, classes))}{hint}"
            )
        bad = [k for k, v in weights.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0]
        if bad:
            problems.append(f"params.class_weight must map classes to non-negative numbers (see {listing(map(repr, bad))})")
    if problems:
        raise ConfigError(f"config {'; '.join(problems)}")


def _param_problem(model: Any, name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for ``model``'s parameter ``name`` (None when it is, or when the
    estimator declares no constraints, e.g. XGBoost)."""
    constraints = getattr(model, "_parameter_constraints", None)
    if not constraints or name not in constraints:
        return None
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    try:
        validate_parameter_constraints({name: constraints[name]}, {name: value}, caller_name=type(model).__name__)
    except InvalidParameterError as exc:
        found = re.search(r"must be (.*)\. Got (.*) instead\.?$", str(exc), re.DOTALL)
        if found is None:
            return f"params.{name} is not valid for {type(model).__name__}: {str(exc)[:200]}"
        # "or an instance of 'sklearn._loss.loss.BaseLoss'": a Python object, which YAML cannot give
        must = re.sub(r" or an instance of '[\w.]+'", "", found.group(1))
        return f"params.{name} must be {must} for {type(model).__name__}; got {found.group(2)[:100]}"
    return None


def build_pipeline(
    schema: list[dict[str, Any]],
    task: str,
    config: DatasetConfig,
    params: dict[str, Any] | None = None,
    ensemble: list[dict[str, Any]] | None = None,
) -> Pipeline:
    """The recipe's untrained Pipeline for these features.

    ``ensemble``: several parameter sets (tuning's best trials): the estimator is then their
    average, one member per set, behind the same preprocessing.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import (
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        StandardScaler,
    )

    features = model_features(schema)  # a date column is its numeric parts
    numeric = [f["name"] for f in features if f["kind"] == "numeric"]
    categorical = [f["name"] for f in features if f["kind"] == "categorical"]
    transformers: list[tuple[str, Any, list[str]]] = []
    # Categories unseen in training map to -1 (ordinal) or all zeros (one-hot) rather than failing
    # the request.
    if config.recipe == "seed-b":
        if categorical:
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            transformers.append(("categorical", encoder, categorical))
        if numeric:
            numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
            transformers.append(("numeric", numbers, numeric))
    else:
        if categorical:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
            transformers.append(("categorical", encoder, categorical))
        if numeric:
            if config.recipe == "seed-a":
                # Seed A trains on complete rows; the imputer only covers prediction requests.
                numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", MinMaxScaler())])
            else:
                numbers = Pipeline([("impute", SimpleImputer(strategy="median"))])
            transformers.append(("numeric", numbers, numeric))
    columns = ColumnTransformer(transformers, remainder="drop")
    if ensemble and len(ensemble) > 1:
        return Pipeline([("columns", columns), ("model", _voting(config, task, ensemble))])
    return Pipeline([("columns", columns), ("model", estimator(config, task, params))])


def _voting(config: DatasetConfig, task: str, ensemble: list[dict[str, Any]]) -> Any:
    """One estimator per parameter set, averaged: class probabilities (soft voting) or values."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    members = [(f"member{index}", estimator(config, task, params)) for index, params in enumerate(ensemble)]
    if task == "classification":
        # flatten_transform=False: skl2onnx converts only the unflattened soft-voting layout
        return VotingClassifier(members, voting="soft", flatten_transform=False)
    return VotingRegressor(members)


def remove_outliers(train: pd.DataFrame, target: str, schema: list[dict[str, Any]], task: str) -> pd.DataFrame:
    """Seed B: drop training rows with a numeric value (or regression target) outside the IQR fences.

    Columns whose IQR is zero (e.g. mostly-zero counts) are skipped: every non-zero value would be
    an "outlier" there. Missing values are never outliers.
    """
    columns = [f["name"] for f in schema if f["kind"] == "numeric"]
    if task == "regression":
        columns.append(target)
    keep = pd.Series(True, index=train.index)
    for name in columns:
        values = pd.to_numeric(train[name], errors="coerce")
        q1, q3 = values.quantile(0.25), values.quantile(0.75)
        iqr = q3 - q1
        if not np.isfinite(iqr) or iqr == 0:
            continue
        inside = values.between(q1 - IQR_FACTOR * iqr, q3 + IQR_FACTOR * iqr) | values.isna()
        keep &= inside
    return train[keep]


def fit(
    train: pd.DataFrame,
    target: str,
    schema: list[dict[str, Any]],
    task: str,
    config: DatasetConfig,
    params: dict[str, Any] | None = None,
    ensemble: list[dict[str, Any]] | None = None,
    target_transform: str | None = None,
) -> Pipeline:
    """Fit the recipe on the training split (``params`` override ``config.params``; ``ensemble``:
    see :func:`build_pipeline`; ``target_transform``: a regression fitted on the transformed target,
    see :mod:`stepml.target_transform`)."""
    if config.recipe == "seed-b":
        train = remove_outliers(train, target, schema, task)
    pipeline = build_pipeline(schema, task, config, params, ensemble)
    if target_transform is not None:
        from stepml import target_transform as transforms

        pipeline.steps[-1] = ("model", transforms.wrap(pipeline.steps[-1][1], target_transform))
    y = train[target]
    if task == "classification":
        y = class_labels(y)
        _encode_class_weight(pipeline.named_steps["model"], y)
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
            pipeline.fit(to_model_frame(train, schema), y)
    except (ValueError, TypeError, ArithmeticError) as exc:
        # Validation refuses what it knows to be untrainable; anything left is still a problem of
        # this data with this recipe, not a crash: say so in the pipeline's words, not a library's.
        # The library's own wording goes to the function's log, not into the run's cause.
        model = type(pipeline.named_steps["model"]).__name__
        logging.getLogger(__name__).warning("fit failed", exc_info=exc, extra={"estimator": model})
        raise DataError(
            f"the {config.recipe} recipe's {model} could not be fitted on the {len(train):,} training rows "
            f"(target {target!r}); the estimator's reason is in the Train function's log. Check the "
            "validation report's warnings, or try another recipe or other params"
        ) from None
    return pipeline


def _encode_class_weight(model: Any, y: pd.Series) -> None:
    """Key a ``class_weight`` mapping by the codes HistGradientBoostingClassifier weights.

    scikit-learn (1.7) applies the mapping to the labels after encoding them as 0..K-1, so
    ``{high: 2}`` as documented ("{class_label: weight}") fails with "classes [0.0, 1.0] are not
    in class_weight". Translate the user's labels to those codes (sorted labels, as its encoder).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    members = [model] if not hasattr(model, "estimators") else [m for _, m in model.estimators]
    codes = {str(label): index for index, label in enumerate(np.unique(y))}
    for member in members:
        weights = member.get_params().get("class_weight")
        if isinstance(member, HistGradientBoostingClassifier) and isinstance(weights, dict):
            member.set_params(class_weight={codes[str(k)]: v for k, v in weights.items() if str(k) in codes})


def fit_with_config(
    train: pd.DataFrame, target: str, schema: list[dict[str, Any]], task: str, config: DatasetConfig
) -> tuple[Pipeline, dict[str, Any] | None]:
    """Fit as the config says: tune first when ``config.tune`` is set, then fit the average of the
    search's best few parameter sets (see :mod:`stepml.tuning`) on the whole training split.

    Returns the fitted pipeline and, when tuned, a small summary of the search (trials, best
    parameters, the ensemble's parameter sets, validation score) for the run's state.
    """
    if config.tune is None and config.recipe == "auto":
        # rounds (and a log target) chosen on a validation split of the training rows
        from stepml.auto_selection import choose

        choice = choose(train, target, schema, task, config)
        logging.getLogger(__name__).info("auto recipe choices", extra={"auto": choice.to_dict()})
        return fit(train, target, schema, task, config, params=choice.params,
                   target_transform=choice.target_transform), None
    if config.tune is None:
        return fit(train, target, schema, task, config), None
    from stepml.tuning import tune

    result = tune(train, target, schema, task, config)
    pipeline = fit(train, target, schema, task, config, params=result["best_params"], ensemble=result["ensemble"])
    return pipeline, result
