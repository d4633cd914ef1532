"""Fit the recipe's pipeline: one scikit-learn Pipeline (ColumnTransformer + estimator).

The fitted Pipeline is the artifact: preprocessing and model travel together, so training and
serving cannot drift apart. What the pipeline holds for each ``config.recipe`` (estimator,
defaults, column transformer, training-row filter) is the recipe's, in :mod:`stepml.recipes`;
this module fits it (tuning first when ``config.tune`` asks, :mod:`stepml.tuning`).

Training runs in threads only (forests' ``n_jobs`` threads; the booster's OpenMP, held to
:data:`stepml.recipes.OPENMP_THREADS`): no process pools, which need /dev/shm, absent on Lambda.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from stepml import category_order, recipes
from stepml.config import DatasetConfig
from stepml.contracts import TuningSummary
from stepml.errors import DataError
from stepml.preprocessing import class_labels, to_model_frame
from stepml.recipes import OPENMP_THREADS, build_pipeline
from stepml.tuning import tune


def fit(
    train: pd.DataFrame,
    target: str,
    schema: list[dict[str, Any]],
    task: str,
    config: DatasetConfig,
    params: dict[str, Any] | None = None,
    ensemble: list[dict[str, Any]] | None = None,
    target_transform: str | None = None,
    family: str = "trees",
    linear_params: dict[str, Any] | None = None,
    linear_weight: float | None = None,
) -> Pipeline:
    """Fit the recipe on the training split (``params`` override ``config.params``; ``ensemble``:
    see :func:`build_pipeline`; ``target_transform``: a regression fitted on the transformed target,
    see :mod:`stepml.target_transform`; ``family``: the trees, or a linear model or blend for the
    auto recipe, see :mod:`stepml.model_family`, with ``linear_params`` and a blend's
    ``linear_weight``)."""
    keep_rows = recipes.get(config.recipe).training_rows
    if keep_rows is not None:
        train = keep_rows(train, target, schema, task)
    pipeline = build_pipeline(schema, task, config, params, ensemble)
    features = to_model_frame(train, schema)
    from stepml import model_family

    if family != "trees":
        pipeline = model_family.build_pipeline(schema, task, config, family, pipeline, features, linear_params,
                                               linear_weight)
    if target_transform is not None:
        from stepml import target_transform as transforms

        pipeline.steps[-1] = ("model", transforms.wrap(pipeline.steps[-1][1], target_transform))
    y = train[target]
    if task == "classification":
        y = class_labels(y)  # a class_weight mapping's keys are matched to them by the booster
    if recipes.get(config.recipe).target_ordered_categories:
        category_order.apply(pipeline.named_steps["columns"], features, y, task)
    from threadpoolctl import threadpool_limits

    try:
        # OpenMP (the boosters) and BLAS (a linear model's lbfgs) alike: see OPENMP_THREADS
        with threadpool_limits(limits=OPENMP_THREADS), warnings.catch_warnings():
            # a linear model (model_family) warns when lbfgs stops at max_iter
            warnings.simplefilter("ignore", ConvergenceWarning)
            if family == "trees":
                # Pipeline.fit, a step at a time (the same fitted steps), so that the model frame is
                # freed once the column transformer has made the matrix the model is fitted on
                matrix = fit_columns(pipeline.named_steps["columns"], features, y)
                del features
                pipeline.named_steps["model"].fit(matrix, y)
                del matrix
            else:
                pipeline.fit(features, y)
                if family == "forest":  # a graph the API loads within its cold start
                    model_family.keep_node_budget(pipeline.named_steps["model"])
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


#: From this many rows the column transformer's matrix is built in row chunks (:func:`fit_columns`).
CHUNKED_ROWS = 100_000
#: Rows transformed at a time into the matrix.
CHUNK_ROWS = 65_536


def fit_columns(columns: Any, features: pd.DataFrame, y: Any = None) -> np.ndarray:
    """``columns.fit_transform(features, y)`` (a ColumnTransformer): the same fitted transformer and
    matrix, with less memory on a large table.

    ``fit_transform`` holds every transformer's intermediate copies and outputs on all rows at once
    (at 1.6M rows 510 MB over the matrix's own 180 MB: Train's peak). From :data:`CHUNKED_ROWS` rows
    the transformer lays out its columns on a slice of the rows, each of its transformers is then
    fitted again on all the rows (what they learn, the categories, medians, scales, comes from every
    row, as ``fit_transform`` learns it), and the matrix is filled :data:`CHUNK_ROWS` rows at a time.
    If the layout learned on the slice differs from all the rows' (a column empty in the slice, a
    category absent from it widening a one-hot block), it falls back to ``fit_transform``.
    """
    if len(features) < CHUNKED_ROWS:
        return np.asarray(columns.fit_transform(features, y))
    head = None if y is None else (y.iloc[:CHUNK_ROWS] if hasattr(y, "iloc") else y[:CHUNK_ROWS])
    columns.fit(features.iloc[:CHUNK_ROWS], head)
    widths = [len(transformer.get_feature_names_out(names)) for _, transformer, names in _fitted(columns)]
    for _, transformer, names in _fitted(columns):
        # its columns as a view (features[names] would copy them first: 77 MB more at the peak)
        _fit_all_rows(transformer, pd.DataFrame({name: features[name] for name in names}, copy=False), y)
    refitted = [len(transformer.get_feature_names_out(names)) for _, transformer, names in _fitted(columns)]
    if refitted != widths or columns.sparse_output_:
        # fit_transform starts again from the unfitted transformers it was given
        return np.asarray(columns.fit_transform(features, y))
    matrix: np.ndarray | None = None
    for start in range(0, len(features), CHUNK_ROWS):
        part = np.asarray(columns.transform(features.iloc[start:start + CHUNK_ROWS]))
        if matrix is None:  # the width and dtype fit_transform gives (float64 for the recipes' transformers)
            matrix = np.empty((len(features), part.shape[1]), dtype=part.dtype)
        matrix[start:start + len(part)] = part
    assert matrix is not None
    return matrix


def _fit_all_rows(transformer: Any, frame: pd.DataFrame, y: Any) -> None:
    """``transformer.fit(frame, y)`` on a transformer already fitted on a slice of the rows, with a
    median SimpleImputer (the recipes' first numeric step) fitted a column at a time.

    SimpleImputer's median (``np.ma.median``) sorts a filled copy of its whole input and keeps the
    sort's indices: at 1.6M rows and six numbers it peaked at 320 MB over its 77 MB input, Train's
    peak. A median is a column's own: each column's, computed alone by the same imputer, is the one
    the whole table gives (the same values, bit for bit), in a sixth of that. The imputer keeps what
    it learned from the slice (feature names, dtype) but the statistics; a Pipeline's later steps
    are then fitted on its output as ``Pipeline.fit`` does.
    """
    from sklearn.base import clone
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    steps = [step for _, step in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    imputer = steps[0]
    if not (isinstance(imputer, SimpleImputer) and imputer.strategy == "median" and not imputer.add_indicator
            and all(hasattr(step, "fit_transform") for step in steps)):
        transformer.fit(frame, y)
        return
    medians = [clone(imputer).fit(frame[[name]]).statistics_[0] for name in frame.columns]
    imputer.statistics_ = np.asarray(medians, dtype=imputer.statistics_.dtype)
    if len(steps) == 1:
        return
    data = imputer.transform(frame)
    for step in steps[1:-1]:
        data = step.fit_transform(data, y)
    steps[-1].fit(data, y)


def _fitted(columns: Any) -> list[tuple[str, Any, list[str]]]:
    """A fitted ColumnTransformer's own transformers and their columns (not the dropped remainder)."""
    return [(name, transformer, list(names)) for name, transformer, names in columns.transformers_
            if name != "remainder" and transformer not in ("drop", "passthrough") and len(names)]


@dataclass(frozen=True)
class Fitted:
    """A fitted pipeline and what chose it: the search's summary when tuned, the ``auto`` recipe's
    validation choices (:meth:`stepml.auto_selection.AutoChoice.to_dict`) otherwise."""

    pipeline: Pipeline
    tuning: TuningSummary | None = None
    auto_choice: dict[str, Any] | None = None


def fit_recorded(
    train: pd.DataFrame, target: str, schema: list[dict[str, Any]], task: str, config: DatasetConfig
) -> Fitted:
    """Fit as the config says, keeping what chose the model (see :func:`fit_with_config`)."""
    if config.tune is None and config.recipe == "auto":
        # rounds, a log target and the model family, chosen on a validation split of the training rows
        from stepml.auto_selection import choose

        choice = choose(train, target, schema, task, config)
        logging.getLogger(__name__).info("auto recipe choices", extra={"auto": choice.to_dict()})
        pipeline = fit(train, target, schema, task, config, params=choice.params,
                       target_transform=choice.target_transform, family=choice.family,
                       linear_params=choice.linear_params)
        recorded = choice.to_dict()
        if choice.family == "forest":
            recorded["forest_trees"] = _forest_trees(pipeline)
        return Fitted(pipeline, auto_choice=recorded)
    if config.tune is None:
        return Fitted(fit(train, target, schema, task, config))
    result = tune(train, target, schema, task, config)
    # the family phase's choice (stepml.tuning): the trees, the linear model, or a weighted blend
    family = result.get("family", "trees")
    pipeline = fit(train, target, schema, task, config, params=result["best_params"], ensemble=result["ensemble"],
                   family=family, linear_params=result.get("linear_params"),
                   linear_weight=result.get("linear_weight") if family == "blend" else None)
    if family == "forest":
        result["forest_trees"] = _forest_trees(pipeline)
    return Fitted(pipeline, tuning=result)


def _forest_trees(pipeline: Pipeline) -> int:
    """How many trees a fitted forest kept (:func:`stepml.model_family.keep_node_budget`)."""
    return len(pipeline.named_steps["model"].estimators_)


def fit_with_config(
    train: pd.DataFrame, target: str, schema: list[dict[str, Any]], task: str, config: DatasetConfig
) -> tuple[Pipeline, TuningSummary | None]:
    """Fit as the config says: tune first when ``config.tune`` is set, then fit the average of the
    search's best few parameter sets (see :mod:`stepml.tuning`) on the whole training split; the
    ``auto`` recipe untuned first chooses its rounds, target transform and model family on a
    validation split (:mod:`stepml.auto_selection`).

    Returns the fitted pipeline and, when tuned, a small summary of the search (trials, best
    parameters, the ensemble's parameter sets, validation score) for the run's state.
    """
    fitted = fit_recorded(train, target, schema, task, config)
    return fitted.pipeline, fitted.tuning
