"""The training recipes: one :class:`Recipe` per ``config.recipe`` value, in one registry.

A recipe is everything that differs between two ways of training: the estimator and its
defaults, the column transformer in front of it, which rows it trains on, whether it can be tuned
and which libraries it needs. Config validation, preprocessing, training, tuning, the ONNX export,
serving's missing-value contract, the bench and the docs all read :data:`RECIPES`; a new recipe
is one entry here plus its test (CONTRIBUTING.md, "Adding a recipe").

Every step is a stock scikit-learn transformer that skl2onnx converts (SimpleImputer,
OrdinalEncoder, OneHotEncoder, MinMaxScaler, StandardScaler, ColumnTransformer), in front of an
estimator with an ONNX converter; no custom classes, so the pickle loads with scikit-learn alone.
Missing numbers are imputed *inside* the pipeline (skl2onnx's trees route NaN differently from
scikit-learn's); missing text arrives as the empty string, a category of its own
(:data:`stepml.preprocessing.MISSING_CATEGORY`). A date column enters as its numeric parts (year,
month...), derived from its strings by :mod:`stepml.dateparts` in front of the pipeline, as serving
derives them in front of the ONNX graph; they are imputed like any number.

The recipes:

``auto`` (default)
    Median imputation, ordinal codes for text (trees split codes well; one-hot would only widen
    the matrix), gradient-boosted trees (LightGBM under HistGradientBoosting's parameter names,
    :mod:`stepml.booster`) at learning rate 0.05, its rounds (and a
    log target for a skewed regression) chosen on a validation split by
    :mod:`stepml.auto_selection` (400 rounds where it cannot choose); on small tables that split
    may prefer a regularised linear model, or its blend with the trees (:mod:`stepml.model_family`).
    LightGBM replaced scikit-learn's HistGradientBoosting by measurement (bench/results/models.json:
    the same kind of trees, fitted in 0.3-0.9x of the time); the Lambda layer ships the libgomp it
    needs, which the Lambda runtime lacks. Classes are weighted
    (``class_weight="balanced"``) when the primary metric is balanced accuracy or F1, the metrics
    that reward the minority class; accuracy and ROC AUC are best served unweighted. Balanced
    accuracy is also the default metric when a class is under 10 % of the rows and the config
    names none (:meth:`stepml.config.DatasetConfig.metric_for`). No decision threshold is tuned,
    so serving needs nothing beyond the pipeline. The only recipe :mod:`stepml.tuning` searches.
``seed-a``
    Rows with missing values dropped (in :func:`stepml.preprocessing.clean`), ordinal encoding,
    min-max scaling, a 100-tree RandomForest (classes weighted as in ``auto``).
``seed-b``
    IQR outlier removal on the training split only (:func:`remove_outliers`), one-hot encoding,
    standard scaling, XGBoost with its defaults. Regression only (XGBoost's classifier needs labels
    0..K-1, which would make the pipeline's classes differ from the user's). Needs ``xgboost``; where
    it is not installed (the Lambda layer leaves it out for size) the run fails with a ConfigError.

Training runs in threads only (forests' ``n_jobs`` threads; the booster's OpenMP, held to
:data:`OPENMP_THREADS`): no process pools, which need /dev/shm, absent on Lambda.

This module imports only the standard library at load time (scikit-learn, pandas and the
estimators' libraries are imported when used), so the inference layer can read the registry.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepml.contracts import TASKS
from stepml.errors import ConfigError, listing

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from stepml.config import DatasetConfig

#: The auto recipe's estimator settings, chosen in bench/bench_models.py (config ``params`` override).
AUTO_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 400,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "early_stopping": False,
}
#: ``auto``'s ``categorical_features`` that makes its text columns the booster's categories
#: (LightGBM's own category splits, :mod:`stepml.booster`) rather than ordinal codes it cuts by
#: threshold: :func:`build_pipeline` replaces it with those columns' indices (as scikit-learn's
#: HistGradientBoosting reads a DataFrame's category dtype).
FROM_DTYPE = "from_dtype"
#: Metrics that reward the minority classes: the auto recipe weights classes when judged by them.
CLASS_WEIGHTED_METRICS = ("balanced_accuracy", "f1")
#: Rows outside [Q1 - k*IQR, Q3 + k*IQR] in any numeric column are outliers (seed B).
IQR_FACTOR = 1.5
#: OpenMP threads while fitting (the booster's own: :data:`stepml.booster.THREADS`). Measured with
#: scikit-learn's HistGradientBoosting, the booster before LightGBM: two OpenMP threads were ~1.5x faster on an
#: idle 2-core machine but 10-40x *slower* on a busy one (spin-waiting threads: Adult 98 s vs 8 s
#: measured here; a 150-row iris fit 5-10 s vs 0.2 s), and the offline stack runs several
#: executions in threads of one process. One thread keeps every default fit well within 60 s.
OPENMP_THREADS = 1

#: A column transformer's parts: (name, transformer, columns), for the numeric and text features.
Transformers = list[tuple[str, Any, list[str]]]


@dataclass(frozen=True)
class Recipe:
    """One way of training a model, looked up by its name (``config.recipe``).

    Attributes
    ----------
    name:
        The config value.
    summary:
        One line for the docs and ``stepml`` help: what the pipeline holds.
    estimator_name:
        The estimator's family, as error messages name it (``XGBoost``).
    tasks:
        The tasks it trains; another task is a ConfigError at validation.
    make_estimator:
        ``(config, task) -> estimator``: the untrained estimator with the recipe's defaults
        (``config.params`` are applied afterwards, by :func:`estimator`).
    columns:
        ``(numeric, categorical) -> transformers``: the ColumnTransformer's parts.
    complete_rows_only:
        Rows with a missing value are dropped before the split (and serving refuses requests with
        one: the model never saw a missing value).
    training_rows:
        ``(train, target, schema, task) -> train``: a filter of the training split only (the test
        split stays as the user gave it), or None.
    tunable:
        :mod:`stepml.tuning` can search its parameters (``config.tune``).
    libraries:
        Import names it needs beyond scikit-learn.
    in_lambda_layer:
        Whether the Lambda layer (layer/requirements.txt) holds those libraries; a recipe
        outside it runs locally and in the bench only.
    target_ordered_categories:
        Its ordinal codes follow the categories' target on the rows it is fitted on
        (:mod:`stepml.category_order`), not the alphabet.
    """

    name: str
    summary: str
    estimator_name: str
    tasks: tuple[str, ...]
    make_estimator: Callable[[DatasetConfig, str], Any]
    columns: Callable[[list[str], list[str]], Transformers]
    complete_rows_only: bool = False
    training_rows: Callable[[pd.DataFrame, str, list[dict[str, Any]], str], pd.DataFrame] | None = None
    tunable: bool = False
    libraries: tuple[str, ...] = ()
    in_lambda_layer: bool = True
    target_ordered_categories: bool = False

    def missing_libraries(self) -> list[str]:
        """The libraries it needs that are not installed here."""
        return [name for name in self.libraries if importlib.util.find_spec(name) is None]


# -- the estimators -------------------------------------------------------------------------------


def _auto_estimator(config: DatasetConfig, task: str) -> Any:
    from stepml.booster import BoostedTreesClassifier, BoostedTreesRegressor

    defaults = {**AUTO_PARAMS, "random_state": config.split.seed}
    if task == "classification":
        if config.metric_for(task) in CLASS_WEIGHTED_METRICS:
            defaults["class_weight"] = "balanced"
        return BoostedTreesClassifier(**defaults)
    return BoostedTreesRegressor(**defaults)


def _forest_estimator(config: DatasetConfig, task: str) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    if task == "classification":
        weights = "balanced" if config.metric_for(task) in CLASS_WEIGHTED_METRICS else None
        return RandomForestClassifier(n_estimators=100, random_state=config.split.seed, n_jobs=-1,
                                      class_weight=weights)
    return RandomForestRegressor(n_estimators=100, random_state=config.split.seed, n_jobs=-1)


def _xgboost_estimator(config: DatasetConfig, task: str) -> Any:
    from xgboost import XGBRegressor

    return XGBRegressor(random_state=config.split.seed, n_jobs=-1, tree_method="hist")


# -- the column transformers ----------------------------------------------------------------------
# Categories unseen in training map to -1 (ordinal) or all zeros (one-hot) rather than failing the
# request.


def _ordinal_encoder() -> Any:
    from sklearn.preprocessing import OrdinalEncoder

    return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)


def _ordinal_imputed(numeric: list[str], categorical: list[str]) -> Transformers:
    """Ordinal codes for text, median imputation for numbers (auto)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    transformers: Transformers = []
    if categorical:
        transformers.append(("categorical", _ordinal_encoder(), categorical))
    if numeric:
        transformers.append(("numeric", Pipeline([("impute", SimpleImputer(strategy="median"))]), numeric))
    return transformers


def _ordinal_min_max(numeric: list[str], categorical: list[str]) -> Transformers:
    """Ordinal codes for text, min-max scaled numbers (seed A)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler

    transformers: Transformers = []
    if categorical:
        transformers.append(("categorical", _ordinal_encoder(), categorical))
    if numeric:
        # Seed A trains on complete rows; the imputer only covers prediction requests.
        numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", MinMaxScaler())])
        transformers.append(("numeric", numbers, numeric))
    return transformers


def _one_hot_standard(numeric: list[str], categorical: list[str]) -> Transformers:
    """One-hot text, median-imputed standardised numbers (seed B)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers: Transformers = []
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", encoder, categorical))
    if numeric:
        numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numbers, numeric))
    return transformers


def remove_outliers(train: pd.DataFrame, target: str, schema: list[dict[str, Any]], task: str) -> pd.DataFrame:
    """Seed B: drop training rows with a numeric value (or regression target) outside the IQR fences.

    Columns whose IQR is zero (e.g. mostly-zero counts) are skipped: every non-zero value would be
    an "outlier" there. Missing values are never outliers.
    """
    import numpy as np
    import pandas as pd

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


# -- the registry ---------------------------------------------------------------------------------

#: Every recipe by name; the first is the default.
RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="auto",
            summary="median imputation, ordinal codes in the target's order, LightGBM, rounds by early stopping "
                    "(log target when skewed; a linear model or blend on small tables when it validates better); "
                    "tunable",
            estimator_name="LightGBM",
            tasks=TASKS,
            make_estimator=_auto_estimator,
            columns=_ordinal_imputed,
            tunable=True,
            libraries=("lightgbm",),
            target_ordered_categories=True,
        ),
        Recipe(
            name="seed-a",
            summary="complete rows only, ordinal codes, min-max scaling, a 100-tree RandomForest",
            estimator_name="RandomForest",
            tasks=TASKS,
            make_estimator=_forest_estimator,
            columns=_ordinal_min_max,
            complete_rows_only=True,
        ),
        Recipe(
            name="seed-b",
            summary="IQR outliers removed from training, one-hot codes, standard scaling, XGBoost; regression only",
            estimator_name="XGBoost",
            tasks=("regression",),
            make_estimator=_xgboost_estimator,
            columns=_one_hot_standard,
            training_rows=remove_outliers,
            libraries=("xgboost",),
            in_lambda_layer=False,
        ),
    )
}
#: The recipe a config without ``recipe`` trains.
DEFAULT_RECIPE = next(iter(RECIPES))
#: Recipes whose models never saw a missing value (serving refuses one).
COMPLETE_ROWS_ONLY = frozenset(name for name, recipe in RECIPES.items() if recipe.complete_rows_only)


def names() -> tuple[str, ...]:
    """The recipe names, default first."""
    return tuple(RECIPES)


def tunable() -> tuple[str, ...]:
    """The recipes :mod:`stepml.tuning` can search."""
    return tuple(name for name, recipe in RECIPES.items() if recipe.tunable)


def get(name: str) -> Recipe:
    """The recipe called ``name``; a ConfigError lists the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"config recipe {name!r} is not a recipe; choose one of {', '.join(RECIPES)}") from None


def check_task(recipe: Recipe, task: str) -> None:
    """Refuse a task the recipe does not train, naming the recipes that do."""
    if task in recipe.tasks:
        return
    others = [name for name, other in RECIPES.items() if task in other.tasks]
    raise ConfigError(
        f"config recipe {recipe.name!r} ({recipe.estimator_name}) is a {' and '.join(recipe.tasks)} recipe; "
        f"use {' or '.join(others)} for {task}"
    )


def estimator(config: DatasetConfig, task: str, params: dict[str, Any] | None = None) -> Any:
    """The recipe's untrained estimator, with ``config.params`` (or ``params``) applied.

    Raises ConfigError for a task the recipe does not train, a library it needs that is not
    installed, and any parameter the estimator does not have (naming it).
    """
    recipe = get(config.recipe)
    check_task(recipe, task)
    missing = recipe.missing_libraries()
    if missing:
        where = " (the Lambda layer leaves it out for size)" if not recipe.in_lambda_layer else ""
        raise ConfigError(
            f"config recipe {recipe.name!r} needs the {listing(missing)} package, which is not installed here"
            f"{where}; use recipe {DEFAULT_RECIPE}"
        )
    model = recipe.make_estimator(config, task)
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
    ensemble: Sequence[dict[str, Any]] | None = None,
) -> Pipeline:
    """The recipe's untrained Pipeline (ColumnTransformer + estimator) for these features.

    ``ensemble``: several parameter sets (tuning's best trials): the estimator is then their
    average, one member per set, behind the same preprocessing.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from stepml.dateparts import model_features

    recipe = get(config.recipe)
    features = model_features(schema)  # a date column is its numeric parts
    numeric = [f["name"] for f in features if f["kind"] == "numeric"]
    categorical = [f["name"] for f in features if f["kind"] == "categorical"]
    transformers = recipe.columns(numeric, categorical)
    columns = ColumnTransformer(transformers, remainder="drop")
    if ensemble and len(ensemble) > 1:
        model = _voting(config, task, ensemble)
        members = [member for _, member in model.estimators]
    else:
        model = estimator(config, task, params)
        members = [model]
    for member in members:  # "from_dtype": the text columns' codes are the booster's categories
        if "categorical_features" in member.get_params(deep=False):
            member.set_params(categorical_features=text_categories(member.categorical_features,
                                                                   text_code_columns(transformers)))
    return Pipeline([("columns", columns), ("model", model)])


def text_categories(chosen: Any, codes: list[int]) -> Any:
    """A booster's ``categorical_features`` for a matrix whose text codes are the columns ``codes``
    (:func:`text_code_columns`): :data:`FROM_DTYPE` names them (None when there are none); any
    other value is the user's own."""
    return (codes or None) if chosen == FROM_DTYPE else chosen


def text_code_columns(transformers: Transformers) -> list[int]:
    """The columns of a ColumnTransformer's output (made of ``transformers``) that hold text
    columns' ordinal codes: the ordinal encoder's block when it comes first, as ``auto``'s does
    (none for a recipe that one-hot encodes text)."""
    from sklearn.preprocessing import OrdinalEncoder

    if transformers and transformers[0][0] == "categorical" and isinstance(transformers[0][1], OrdinalEncoder):
        return list(range(len(transformers[0][2])))
    return []


def _voting(config: DatasetConfig, task: str, ensemble: Sequence[dict[str, Any]]) -> Any:
    """One estimator per parameter set, averaged: class probabilities (soft voting) or values."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    members = [(f"member{index}", estimator(config, task, params)) for index, params in enumerate(ensemble)]
    if task == "classification":
        # flatten_transform=False: skl2onnx converts only the unflattened soft-voting layout
        return VotingClassifier(members, voting="soft", flatten_transform=False)
    return VotingRegressor(members)
