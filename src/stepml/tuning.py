"""Hyperparameter search for the ``auto`` recipe with Optuna, within a time budget.

``tune: {budget_seconds: N}`` in the config turns it on. The search never sees the test split:
a validation split is carved from the *training* rows (20 %, stratified for classification, seeded
by ``split.seed``). The preprocessing is fitted once on the rest; each trial then fits only the
booster, with early stopping on the validation split's loss (the loss the booster minimises:
log-loss for classification, class-weighted when classes are, squared error for regression), so
the number of boosting rounds is not searched but read off each trial's validation curve: the
round with the lowest loss, after at most :data:`MAX_ROUNDS` and :data:`PATIENCE` rounds without
improvement. The first trial is the recipe's defaults, the second (where rounds are not costly)
its small leaves (:data:`stepml.auto_selection.SMALL_LEAF_PARAMS`); where rounds are costly, the
first trial is ``auto``'s faster, larger rounds and, when those converged fast on one split
(:func:`stepml.auto_selection.fine_rounds_cheap`), the second the recipe's own rate and leaves
(diamonds' 60 s search: RMSE 527.8 -> 526.7, AutoGluon 526.4; movies 0.7197 -> 0.7192). On one split of a table
whose text ``auto`` would try as the booster's categories
(:func:`stepml.auto_selection.many_categories`), the third trial is the defaults with the text
as the booster's categories (``categorical_features: from_dtype``); the trials after it keep
them when its validation loss was 1 % lower than the first trial's (as ``auto`` decides,
:func:`stepml.auto_selection.clearly_better`), else the ordered codes: one decision, not a
dimension of the search, which a few dozen trials would spend half their time exploring.

On a small table, where the ``auto`` recipe chooses on cross-validation folds
(:func:`stepml.auto_selection.choice_folds`), the trials are scored on the same folds: each trial
fits the booster once per fold, its rounds are the folds' best rounds averaged (scaled by
FOLDS / (FOLDS - 1) for the final fit), and its loss is that of all the folds' predictions pooled
(every training row, predicted out of fold). One split's 100-odd validation rows are few enough
that more trials fit their noise (fair_pt, 97 rows: idle tune with more trials scored 0.281 ->
0.214 balanced accuracy on the test rows); the family phase and the forest's offer below use the
same folds.

Trials are ranked by that validation loss, not by the primary metric: on a few thousand rows
accuracy moves in steps of one row and picks winners by noise (Adult, one search ranked by
accuracy: its best trial, validation 0.8816, scored 0.8721 on the test split, below the defaults'
0.8729), while the loss is smooth. The caller fits the :data:`ENSEMBLE_SIZE` best parameter sets
on the whole training split, each with its rounds scaled by :data:`ROUNDS_SCALE` (a quarter more
rows than the trial saw), and averages them (probabilities, or values): the winner is within
validation noise of its runners-up, and the average has less variance than any one of them.
Measured on prefixes of one search (a slower machine stops earlier; the search is deterministic):
Adult test accuracy 0.8730-0.8741 after 4-25 trials (the best trial alone 0.8726-0.8738, the best
two averaged 0.8727-0.8738; ranked by accuracy instead of loss, three averaged 0.8724-0.8737),
California RMSE 44,203-44,667 $ after 5-36 trials. The ONNX model holds every member: Adult's
three members are ~2,300 trees, single-row ONNX inference ~4x the defaults' 400 trees.

On tables where the ``auto`` recipe compares model families (:func:`stepml.model_family.suits`,
no ``params`` fixed) the search goes on past the trees, on the same validation rows: a second,
short Optuna study searches the linear model's regularisation (ridge ``alpha`` or logistic ``C``,
out of :data:`LINEAR_PENALTIES`) and its weight in a blend with the averaged boosters (0: the
trees alone, 1: the linear model alone, in steps of :data:`WEIGHT_STEP`), minimising the same
validation loss. Its first trial is the trees alone, so a blend is kept only when it validates
better. The family phase has :data:`FAMILY_SHARE` of the budget (its trials reuse one linear fit
per penalty, so they cost milliseconds); the model is still one pipeline, a weighted
``VotingRegressor`` / soft ``VotingClassifier`` that skl2onnx converts in float64. Last, on at most
:data:`~stepml.model_family.FOREST_MAX_ROWS` rows, the ``auto`` recipe's forest is fitted on the
same rows and replaces the searched model when its primary metric there is better.

Optuna runs trials one at a time (``n_jobs=1``): the estimator already uses the cores through
threads, and process-based parallelism is unavailable on Lambda. The budget covers the final fit
too: after each trial the search stops when the time spent, the next trial's (taken as the last
one's) and the final fit's would pass it. The final fit is estimated from the trials it averages:
each one's time in proportion to the rows x rounds its final fit boosts (all the training rows,
its scaled best round) against those its trial boosted (each fold's fitting rows, up to the best
round plus :data:`PATIENCE`). Measured with the search alone under the budget (60 s):
nyc_weather's final fit took 31 s after its search, flights' 89 s (two trials of ~45 s), airports'
21 s. At least one trial runs: a table whose one trial and final fit take longer than the budget
still overruns it. The summary records the estimate (``final_fit_seconds``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_sample_weight

from stepml import category_order, model_family, recipes

# VALIDATION_SIZE and ROUNDS_SCALE are shared with the auto recipe's choice (and the Spark job)
from stepml.auto_selection import (
    COSTLY_ROUND_PARAMS,
    ROUNDS_SCALE,  # noqa: F401  (re-exported: the module docstring and callers name it here)
    SMALL_LEAF_PARAMS,
    VALIDATION_SIZE,
    booster_bins,
    choice_folds,
    clearly_better,
    costly_rounds,
    fine_rounds_cheap,
    many_categories,
    output_after,
    rounds_scale,
    smallest_class,
    trees_per_round,
)
from stepml.config import METRICS, DatasetConfig
from stepml.contracts import TuningSummary
from stepml.errors import ConfigError
from stepml.preprocessing import class_labels, to_model_frame
from stepml.recipes import (
    AUTO_PARAMS,
    FROM_DTYPE,
    OPENMP_THREADS,
    build_pipeline,
    estimator,
    text_categories,
    text_code_columns,
)

#: How many of the best trials the tuned model averages (see the module docstring).
ENSEMBLE_SIZE = 3
#: Most boosting rounds a trial fits; it stops earlier after PATIENCE rounds without a lower loss.
#: The cap bounds the served model (at most 3 x 1,250 trees): California's loss still falls after
#: 3,000 rounds at small learning rates, for an 18 MB model; capped, the search favours faster rates.
MAX_ROUNDS = 1000
PATIENCE = 100
#: Fewest rows a leaf may hold in the search on small tables. Five rows of 130 (a quarterly series'
#: 33 years) is a leaf four years wide; the validation loss, not a floor, should say how fine the
#: trees may cut (macrodata's tuned RMSE 0.399 with leaves of at least 5, 0.356 from 1; AutoGluon's
#: forests and CatBoost also grow leaves of a row or two).
SMALL_TABLE_MIN_LEAF = 1
#: ... and on larger ones.
LARGE_TABLE_MIN_LEAF = 5
#: Share of the budget the family phase (linear penalty and blend weight) may take.
FAMILY_SHARE = 0.15
#: Most trials of the family phase: two parameters, a few dozen trials settle them.
FAMILY_TRIALS = 60
#: The linear model's penalties searched: ridge ``alpha`` or logistic ``C``, on standardised features.
LINEAR_PENALTIES = tuple(float(value) for value in np.logspace(-3, 3, 13))
#: The blend weights searched are multiples of this (coarse: on a few hundred validation rows a
#: finer weight only fits their noise).
WEIGHT_STEP = 0.1


def final_fit_estimate(trial_seconds: float, trial_row_rounds: int, final_row_rounds: int) -> float:
    """The seconds a trial's parameters take to fit on all the training rows: the trial's time in
    proportion to the rows x rounds its final fit boosts (``final_row_rounds``) against those its
    fits boosted (``trial_row_rounds``: each fold's fitting rows x the rounds boosted there)."""
    return trial_seconds * final_row_rounds / max(1, trial_row_rounds)


def min_leaf(small: bool) -> int:
    """The fewest rows a leaf may hold in the search: :data:`SMALL_TABLE_MIN_LEAF` on a ``small``
    table, else :data:`LARGE_TABLE_MIN_LEAF`."""
    return SMALL_TABLE_MIN_LEAF if small else LARGE_TABLE_MIN_LEAF


def search_space(trial: Any, small: bool = False) -> dict[str, Any]:
    """The booster's parameters worth searching (HistGradientBoosting's names, :mod:`stepml.booster`), with ranges that suit 1k-1M rows; on a
    ``small`` table (at most :data:`stepml.model_family.MAX_TRAINING_ROWS` training rows) leaves
    may hold down to :data:`SMALL_TABLE_MIN_LEAF` row(s).

    ``max_iter`` is not among them: each trial's early stopping chooses it.
    """
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 15, 127, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", min_leaf(small), 100, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
        "max_features": trial.suggest_float("max_features", 0.5, 1.0),
    }


def tune(
    train: pd.DataFrame, target: str, schema: list[dict[str, Any]], task: str, config: DatasetConfig
) -> TuningSummary:
    """Search within ``config.tune.budget_seconds``; returns trials, best params and scores.

    Parameters the user fixed in ``config.params`` are not searched: they apply to every trial. A
    fixed ``max_iter`` is kept as it is (every trial boosts that many rounds, unscaled).

    The result's ``ensemble`` lists the parameter sets to average (best first, ``max_iter``
    included), ``validation_losses`` their validation losses and ``validation_scores`` their
    primary metric on the validation split.
    """
    if config.tune is None or not recipes.get(config.recipe).tunable:
        raise ConfigError(f"config tune works with recipe {' or '.join(recipes.tunable())} only")
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "config tune needs the optuna package, which is not installed here; remove tune"
        ) from None
    from threadpoolctl import threadpool_limits

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = config.metric_for(task)
    labels = class_labels if task == "classification" else (lambda values: values.astype(float))
    round_trees = trees_per_round(train, target, task)
    folds = [_Fold.of(fitting, validation, schema, task, config, target, labels)
             for fitting, validation in _splits(train, target, task, config, round_trees)]
    y_val = np.concatenate([fold.y_val for fold in folds])  # every fold's validation rows, in fold order
    scale = rounds_scale(len(folds))
    fixed = dict(config.params)
    fixed_rounds = fixed.get("max_iter")
    small = len(train) <= model_family.MAX_TRAINING_ROWS
    families = not fixed and model_family.suits(train, schema)
    # as auto bins: the same trees as 255 bins grow where every column has fewer values, and no
    # more bins than a quarter of a small table's rows
    bins = None if "max_bins" in fixed else booster_bins(train, schema)
    binning = {} if bins is None else {"max_bins": bins}
    outputs: dict[int, np.ndarray] = {}  # each trial's validation predictions, for the family phase
    # the text columns as the booster's categories, searched where auto would try them
    codes = text_code_columns(build_pipeline(schema, task, config).named_steps["columns"].transformers)
    categories = (bool(codes) and "categorical_features" not in fixed and len(folds) == 1
                  and many_categories(train, schema))
    decided: dict[str, Any] = {}  # "categorical_features" of the trials after the categories' own

    def objective(trial: Any) -> float:
        began = time.perf_counter()
        params = {**search_space(trial, small), **binning, **fixed}
        if categories:
            chosen = trial.user_attrs.get("categorical_features", decided.get("categorical_features"))
            trial.set_user_attr("categorical_features", chosen)
            if chosen == FROM_DTYPE:
                params["categorical_features"] = chosen
        if "categorical_features" in params:  # the fits' matrices: the codes' columns
            params["categorical_features"] = text_categories(params["categorical_features"], codes)
        fold_rounds, fold_outputs, fold_losses = [], [], []
        boosted = 0  # rows x rounds the trial's fits boosted
        for fold in folds:
            model = estimator(config, task, params)
            if fixed_rounds is None:
                model.set_params(max_iter=MAX_ROUNDS, n_iter_no_change=PATIENCE)
            else:  # boost exactly the rounds the user fixed
                model.set_params(n_iter_no_change=fixed_rounds)
            model.set_params(early_stopping=True, tol=0.0)
            # the booster weights classes in the training loss only; weigh the validation loss alike
            weights = None if getattr(model, "class_weight", None) is None else compute_sample_weight(
                model.class_weight, fold.y_val
            )
            with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
                model.fit(fold.x_fit, fold.y_fit, X_val=fold.x_val, y_val=fold.y_val, sample_weight_val=weights)
                losses = -np.asarray(model.validation_score_)  # after 0, 1, 2, ... rounds
                rounds = len(losses) - 1 if fixed_rounds is not None else max(1, int(np.argmin(losses)))
                fold_outputs.append(output_after(model, rounds, fold.x_val, task))
            boosted += len(fold.y_fit) * (len(losses) - 1)
            fold_rounds.append(rounds)
            fold_losses.append(float(losses[rounds]))
        output = np.concatenate(fold_outputs)
        trial.set_user_attr("score", model_family.validation_score(task, metric, y_val, output, folds[0].classes))
        if families:
            outputs[trial.number] = output
        mean_rounds = float(np.mean(fold_rounds))
        final_rounds = fixed_rounds if fixed_rounds is not None else round(mean_rounds * scale)
        trial.set_user_attr("max_iter", final_rounds)
        trial.set_user_attr("rounds", mean_rounds)
        trial.set_user_attr("final_seconds", final_fit_estimate(time.perf_counter() - began, boosted,
                                                                len(train) * final_rounds))
        # one split: the booster's own validation loss; folds: that loss on all their predictions
        # pooled (every training row once, out of fold)
        return fold_losses[0] if len(folds) == 1 else model_family.validation_loss(
            task, y_val, output, folds[0].classes, config)

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=config.split.seed))
    defaults = {name: value for name, value in AUTO_PARAMS.items() if name in ("learning_rate",
                "max_leaf_nodes", "min_samples_leaf")}
    costly = costly_rounds(len(train), round_trees, len(folds))
    if costly:
        # the first trial is what auto fits there: faster, larger rounds (nyc_weather, 21k rows x 3
        # classes, 60 s: 0.6180 -> 0.6198 test accuracy, AutoGluon medium's)
        defaults.update(COSTLY_ROUND_PARAMS)
    study.enqueue_trial({**defaults, "l2_regularization": 1e-3, "max_features": 1.0})
    if not costly:
        # the second: auto's small leaves (stepml.auto_selection.SMALL_LEAF_PARAMS), as few rows
        # a leaf as the search allows
        study.enqueue_trial({**defaults, "l2_regularization": 1e-3, **SMALL_LEAF_PARAMS,
                             "min_samples_leaf": max(SMALL_LEAF_PARAMS["min_samples_leaf"], min_leaf(small))})
    if categories:
        # then the defaults with the text as the booster's categories, as auto tries them; the
        # trials after it keep them when they validated clearly better than the first trial
        study.enqueue_trial({**defaults, "l2_regularization": 1e-3, "max_features": 1.0},
                            user_attrs={"categorical_features": FROM_DTYPE})
    started = time.perf_counter()
    trees_budget = config.tune.budget_seconds * (1 - FAMILY_SHARE if families else 1)

    def best_trials() -> tuple[list[dict[str, Any]], list[Any]]:
        """The :data:`ENSEMBLE_SIZE` best distinct parameter sets so far, and their trials."""
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        ensemble: list[dict[str, Any]] = []
        chosen: list[Any] = []
        for trial in sorted(completed, key=lambda t: t.value if t.value is not None else float("inf")):
            params = {**trial.params, "max_iter": trial.user_attrs["max_iter"], **binning, **fixed}
            if categories:
                params["categorical_features"] = trial.user_attrs["categorical_features"]
            if params not in ensemble:
                ensemble.append(params)
                chosen.append(trial)
            if len(ensemble) == ENSEMBLE_SIZE:
                break
        return ensemble, chosen

    def final_fit_seconds(chosen: list[Any]) -> float:
        return sum(float(trial.user_attrs["final_seconds"]) for trial in chosen)

    def within_budget(study: Any, trial: Any) -> None:
        if (costly and len(folds) == 1 and trial.number == 0 and trial.value is not None
                and fine_rounds_cheap(len(folds[0].y_fit), round_trees, round(trial.user_attrs["rounds"]))):
            # the costly rounds converged fast: the next trial is the recipe's own rate and leaves,
            # as auto tries them (stepml.auto_selection.fine_rounds_cheap)
            study.enqueue_trial({**{name: AUTO_PARAMS[name] for name in defaults}, "l2_regularization": 1e-3,
                                 "max_features": 1.0})
        if categories and trial.user_attrs.get("categorical_features") == FROM_DTYPE and not decided:
            first = study.trials[0]
            better = (trial.value is not None and first.value is not None
                      and clearly_better(trial.value, first.value, higher_is_better=False))
            decided["categorical_features"] = FROM_DTYPE if better else None
        # stop before the next trial (about as long as this one) would leave the final fit no time
        last = trial.duration.total_seconds() if trial.duration is not None else 0.0
        if time.perf_counter() - started + final_fit_seconds(best_trials()[1]) + last > trees_budget:
            study.stop()

    study.optimize(objective, timeout=trees_budget, n_trials=None, n_jobs=1, catch=(ValueError,),
                   callbacks=[within_budget])
    ensemble, chosen = best_trials()
    if not chosen:
        raise ConfigError("config tune: no trial completed within budget_seconds; raise the budget")
    final_seconds = final_fit_seconds(chosen)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary: TuningSummary = {
        "trials": len(completed),
        "seconds": round(time.perf_counter() - started, 1),
        "metric": metric,
        "validation_score": float(chosen[0].user_attrs["score"]),
        "validation_scores": [float(t.user_attrs["score"]) for t in chosen],
        "validation_losses": [float(t.value) for t in chosen],
        "validation_rows": len(y_val),
        "best_params": ensemble[0],
        "ensemble": ensemble,
        "folds": len(folds),
        "final_fit_seconds": round(final_seconds, 1),
    }
    if families:
        trees_output = np.mean([outputs[trial.number] for trial in chosen], axis=0)
        classes = folds[0].classes
        remaining = max(1.0, config.tune.budget_seconds - (time.perf_counter() - started) - final_seconds)
        family = _search_family(study_seed=config.split.seed, timeout=remaining, schema=schema, task=task,
                                config=config, folds=folds, y_val=y_val, trees_output=trees_output,
                                classes=classes)
        if family is not None:
            summary["family"], summary["linear_params"] = family["family"], family["linear_params"]
            summary["linear_weight"], summary["family_trials"] = family["linear_weight"], family["family_trials"]
            summary["family_losses"] = family["family_losses"]
        if len(train) <= model_family.FOREST_MAX_ROWS:
            _offer_forest(summary, config, task, metric, folds, y_val, classes,
                          trees_output if family is None else family["output"])
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _search_family(
    study_seed: int, timeout: float, schema: list[dict[str, Any]], task: str, config: DatasetConfig,
    folds: list[_Fold], y_val: np.ndarray, trees_output: np.ndarray, classes: np.ndarray | None,
) -> dict[str, Any] | None:
    """The family phase (module docstring): the linear model's penalty and its blend weight with
    the trees' averaged validation predictions ``trees_output`` (every fold's, in fold order, as
    ``y_val``), by validation loss. None when the linear model cannot be fitted here (or misses a
    class): the trees are kept."""
    import logging
    import warnings

    import optuna
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    penalty = "alpha" if task == "regression" else "C"
    linear_outputs: dict[float, np.ndarray | None] = {}

    def fold_output(fold: _Fold, value: float) -> np.ndarray | None:
        pipeline = model_family.build_pipeline(schema, task, config, model_family.LINEAR,
                                               linear_params={penalty: value})
        try:
            # one BLAS thread (see model_family.linear_outputs); lbfgs stopping at max_iter is fine here
            with warnings.catch_warnings(), threadpool_limits(limits=1):
                warnings.simplefilter("ignore", ConvergenceWarning)
                pipeline.fit(fold.features, fold.y_fit)
        except (ValueError, TypeError, ArithmeticError) as exc:
            logging.getLogger(__name__).info("linear family not fitted", extra={"reason": str(exc)[:300]})
            return None
        if task == "regression":
            return np.asarray(pipeline.predict(fold.validating), dtype=float)
        same = classes is not None and list(pipeline.classes_) == list(classes)
        return pipeline.predict_proba(fold.validating) if same else None

    def linear_output(value: float) -> np.ndarray | None:
        if value not in linear_outputs:
            predicted = []
            for fold in folds:
                output = fold_output(fold, value)
                if output is None:
                    break
                predicted.append(output)
            linear_outputs[value] = np.concatenate(predicted) if len(predicted) == len(folds) else None
        return linear_outputs[value]

    def blended(weight: float, value: float) -> np.ndarray | None:
        line = linear_output(value)
        return None if line is None else (1 - weight) * trees_output + weight * line

    def objective(trial: Any) -> float:
        weight = trial.suggest_float("linear_weight", 0.0, 1.0, step=WEIGHT_STEP)
        value = trial.suggest_categorical(penalty, LINEAR_PENALTIES)
        output = trees_output if weight == 0 else blended(weight, value)
        if output is None:
            raise optuna.TrialPruned
        return model_family.validation_loss(task, y_val, output, classes, config)

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=study_seed))
    default_penalty = 1.0
    study.enqueue_trial({"linear_weight": 0.0, penalty: default_penalty})  # the trees alone: kept on a tie
    study.enqueue_trial({"linear_weight": 0.5, penalty: default_penalty})
    study.enqueue_trial({"linear_weight": 1.0, penalty: default_penalty})
    study.optimize(objective, n_trials=3, n_jobs=1, catch=())  # the three enqueued: whatever the time left
    study.optimize(objective, timeout=timeout, n_trials=FAMILY_TRIALS - 3, n_jobs=1, catch=())
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(completed) < 2 or linear_output(default_penalty) is None:
        return None
    best = min(completed, key=lambda t: (t.value, t.number))
    weight = round(float(best.params["linear_weight"]), 2)  # Optuna's steps carry float noise (0.6000000000000001)
    family = (model_family.TREES if weight == 0 else model_family.LINEAR if weight == 1
              else model_family.BLEND)
    # the enqueued trees-alone trial is the first; every completed trial has its (finite) loss
    losses = {"trees": float(completed[0].value or 0.0), family: float(best.value or 0.0)}
    output = trees_output if weight == 0 else blended(weight, float(best.params[penalty]))
    return {
        "family": family,
        "linear_params": {} if family == model_family.TREES else {penalty: float(best.params[penalty])},
        "linear_weight": weight,
        "family_trials": len(completed),
        "family_losses": losses,
        "output": output,
    }


def _offer_forest(
    summary: TuningSummary, config: DatasetConfig, task: str, metric: str, folds: list[_Fold],
    y_val: np.ndarray, classes: np.ndarray | None, searched: np.ndarray,
) -> None:
    """After the search, the ``auto`` recipe's forest (:mod:`stepml.model_family`) on the same
    validation rows: it replaces the searched model when it scores better by the primary metric
    (ranked by it, not by the loss: a forest's fully grown trees give a class probability 0 that
    log loss punishes without bound). ``searched``: the searched model's validation predictions."""
    grown = [model_family.forest_output(config, task, fold.x_fit, fold.y_fit, fold.x_val, classes) for fold in folds]
    if any(output is None for output in grown):
        return
    forest = np.concatenate([output for output in grown if output is not None])
    higher_is_better = METRICS[task][metric]
    forest_score = model_family.validation_score(task, metric, y_val, forest, classes)
    searched_score = model_family.validation_score(task, metric, y_val, searched, classes)
    summary["forest_score"], summary["searched_score"] = forest_score, searched_score
    if (forest_score > searched_score) if higher_is_better else (forest_score < searched_score):
        summary["family"], summary["linear_params"] = model_family.FOREST, {}
        summary.pop("linear_weight", None)


def _splits(
    train: pd.DataFrame, target: str, task: str, config: DatasetConfig, round_trees: int
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """The (fitting, validation) rows trials are scored on: the ``auto`` recipe's cross-validation
    folds on a small table (:func:`stepml.auto_selection.choice_folds`: one split's hundred-odd
    validation rows let more trials overfit them), else one split holding out
    :data:`VALIDATION_SIZE` of the training rows. ``round_trees``: the trees a boosting round grows
    (:func:`stepml.auto_selection.trees_per_round`)."""
    folds = choice_folds(train, target, task, config, round_trees)
    if len(folds) > 1:
        return folds
    stratify = train[target] if task == "classification" and smallest_class(train, target, task) >= 2 else None
    return [tuple(train_test_split(train, test_size=VALIDATION_SIZE, random_state=config.split.seed,
                                   stratify=stratify))]  # type: ignore[list-item]


@dataclass(frozen=True)
class _Fold:
    """One (fitting, validation) split of the training rows, read once: the model frames (the
    linear model fits its own columns on them), the booster's columns fitted on the fitting rows,
    the targets, and the classes (every fold's fitting rows hold every class)."""

    features: pd.DataFrame
    validating: pd.DataFrame
    x_fit: np.ndarray
    x_val: np.ndarray
    y_fit: np.ndarray
    y_val: np.ndarray
    classes: np.ndarray | None

    @classmethod
    def of(cls, fitting: pd.DataFrame, validation: pd.DataFrame, schema: list[dict[str, Any]], task: str,
           config: DatasetConfig, target: str, labels: Any) -> _Fold:
        features, validating = to_model_frame(fitting, schema), to_model_frame(validation, schema)
        columns = build_pipeline(schema, task, config).named_steps["columns"]
        y_fit = labels(fitting[target]).to_numpy()
        category_order.apply(columns, features, y_fit, task)  # in the order of the fitting rows' target
        return cls(features, validating, columns.fit_transform(features), columns.transform(validating),
                   y_fit, labels(validation[target]).to_numpy(),
                   np.unique(y_fit) if task == "classification" else None)
