"""What the ``auto`` recipe chooses on a validation split before its final fit.

A fifth of the training rows (stratified for classification, seeded by ``split.seed``; the test
split is never seen) is held out, the preprocessing is fitted on the rest, and the booster is
fitted there with early stopping on the held-out rows' loss, as :mod:`stepml.tuning` scores its
trials.

On a small table (under :data:`CROSS_VALIDATION_ROWS` training rows, rounds of at most
:data:`CROSS_VALIDATION_ROW_TREES` rows x trees, every class with :data:`FOLDS` rows) one fifth is
too few rows to choose on (a 1,169-row table's fifth holds 4 rows of its rarest class), so this is
done :data:`FOLDS` times, on the folds of a cross-validation: every training row is predicted once
by fits that did not see it, the candidates below are scored on all those predictions, and the
rounds are the folds' best rounds averaged (each fold stops after :data:`FOLD_PATIENCE` rounds
without improvement) and scaled by FOLDS / (FOLDS - 1) (the final fit sees half as many rows again
as each fold's fit). Above :data:`LARGE_TABLE_ROWS` training rows the validation fit runs on a
sample of them and boosts at most :data:`MAX_ROUNDS_LARGE` rounds, so that Train fits in Lambda's
15 minutes. Read off the validation predictions:

* **boosting rounds**: the round with the lowest validation loss (at most :data:`MAX_ROUNDS`,
  stopping after :data:`PATIENCE` rounds without improvement), scaled by
  :data:`ROUNDS_SCALE` for the final fit on all the training rows (a quarter more
  rows than the validation fit saw), instead of a fixed 400: a 150-row table stops early rather
  than memorising its rows, a large one boosts longer. At least :data:`MIN_ROUNDS`, unless the
  validation curve diverged (:data:`DIVERGING_LOSS_RATIO`).
* **a model family** (tables of at most :data:`~stepml.model_family.MAX_TRAINING_ROWS` training
  rows and :data:`~stepml.model_family.MAX_ONE_HOT_COLUMNS` categories, no ``params`` fixed): the
  trees, a regularised linear model, the blend of both (not offered with a log target), or (at
  most :data:`~stepml.model_family.FOREST_MAX_ROWS` rows) a forest of extremely randomised trees,
  whichever validates best (:mod:`stepml.model_family`).
* **a log target** (regression): when the target is non-negative and right-skewed
  (:func:`stepml.target_transform.suits`), the booster is also fitted on ``log1p(y)``; the
  transform is kept when its predictions, back on the target's scale, score better on the
  validation split by the run's primary metric (RMSE by default). For RMSE and R² those
  predictions are smeared to a mean first (:func:`stepml.target_transform.smeared`), and the
  smearing's logarithm is the final booster's ``output_offset``.

* **faster, larger rounds where rounds are costly**: when a round grows trees over at least
  :data:`COSTLY_ROUND_ROW_TREES` rows (the training rows times the trees a round grows: one per
  class for three or more classes, else one; times :data:`FOLDS` when the choice is
  cross-validated, as it boosts each round on every fold) both fits use
  :data:`COSTLY_ROUND_PARAMS` (learning rate 0.2 instead of 0.05, 63 leaves instead of 31):
  fewer rounds, each drawing more of a large table's detail (nyc_weather: 21k rows x 3 classes;
  flights: 262k rows; digits: 1,438 rows x 10 classes x 3 folds). Below it, where a fit takes
  seconds, the recipe's settings keep their small gain (Adult's ROC AUC). When those rounds
  converge within :data:`FINE_ROUNDS` and a fit at the recipe's rate would stay cheap
  (:func:`fine_rounds_cheap`), that fit is tried too on the same split and kept if it validates
  better (a smooth target: diamonds' price, movies' rating).

* **small leaves where they validate clearly better**: on one held-out split whose rounds are
  not costly, and where a second fit stays cheap (:func:`second_fit_cheap`), the booster is fitted
  again with :data:`SMALL_LEAF_PARAMS` (leaves of 2 rows instead of 20, each split chosen among a
  random 70 % of the columns) and kept when its validation error is at least
  :data:`SMALL_LEAF_MARGIN` lower (:func:`clearly_better`). A table whose rows come in small groups
  the columns identify only together (Ecdat's Wages: 595 people x 7 years, no person ID; a
  catalogue of computers' prices) is drawn better by leaves of a few rows.

* **text as the booster's categories where that validates clearly better**: on one held-out
  split of a table of :data:`CATEGORY_MIN_ROWS` rows or more where a text column holds more than
  :data:`MANY_CATEGORIES` categories of :data:`CATEGORY_ROWS` rows each on average (players,
  teams, stores) and the fit stays under
  :data:`CATEGORY_ROW_TREE_ROUNDS`, the booster is fitted again on the best settings so far with
  the text columns as LightGBM's categories (``categorical_features: from_dtype``: at each node a
  set of categories goes left) and kept when its validation error is :data:`SMALL_LEAF_MARGIN`
  lower; otherwise the codes in their target's order stay.

* **bins as many as the values, and as the rows**: when every column of the booster's matrix
  holds fewer than :data:`DEFAULT_BINS` distinct values (small integers, codes, categories), both
  fits use that many bins (:func:`exact_bins`): the very trees 255 bins grow, with narrower
  histograms; and a small table's booster has no more than one bin per :data:`ROWS_PER_BIN`
  training rows (:func:`booster_bins`).

The final model is then one ordinary fit of the recipe's pipeline with those rounds (and the
transform), so it exports and serves as before. Parameters the user fixed in ``config.params``
are respected: a fixed ``max_iter`` (or ``early_stopping``) leaves the rounds alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_sample_weight
from threadpoolctl import threadpool_limits

from stepml import category_order, model_family, target_transform
from stepml.config import METRICS, DatasetConfig
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

#: Share of the training rows held out to choose on (here, and for :mod:`stepml.tuning`'s trials).
VALIDATION_SIZE = 0.2
#: The final fit sees 1 / (1 - VALIDATION_SIZE) times a validation fit's (or a tune trial's) rows,
#: so it boosts that many more rounds (measured on prefixes of one search: Adult accuracy 0.8730-0.8741 scaled, 0.8725-0.8742
#: unscaled, with 3,000 rounds at most; California RMSE 44,198-44,311 $ scaled, 44,310-44,488
#: unscaled).
ROUNDS_SCALE = 1 / (1 - VALIDATION_SIZE)
#: Most rounds the validation fit boosts (the final fit: ROUNDS_SCALE times the best of them).
MAX_ROUNDS = 1000
#: Rounds without a lower validation loss before the validation fit stops.
PATIENCE = 50
#: ... when the choice is cross-validated (:data:`FOLDS` fits whose best rounds are averaged).
#: Measured on the ten cross-validated bench tables: 20 instead of 50 cut their fit time by a
#: quarter to a third (seattle_weather 6.2 -> 4.1 s) with the same test scores on nine
#: (macrodata's RMSE 0.439 -> 0.442).
FOLD_PATIENCE = 20
#: Fewest rounds the final fit boosts. A best round of 1-2 means the validation curve found no
#: signal (fair_pt: 97 validation rows, six classes); 10 rounds then barely left the class prior
#: (balanced accuracy 0.151, under the 0.167 baseline) where 30 scored 0.231 (400: 0.217).
MIN_ROUNDS = 30
#: ... unless the validation curve diverges: its loss after the last round boosted is more than this
#: many times its loss after the first round. Then boosting on makes the model worse, not merely
#: no better, and the best round is kept as it is. Measured: fair_pt's flat folds end 1.06-1.12
#: times their first round's loss; airports (56 weighted classes, without
#: :data:`~stepml.booster.MAX_LEAF_LOGITS`) ended at 21.9 times it (1.45 -> 31.7), where the 30
#: forced rounds scored 0.08 balanced accuracy on the test rows.
DIVERGING_LOSS_RATIO = 2.0
#: Below this many training rows the validation split is too small to choose anything: the
#: recipe's defaults apply, unless every class has :data:`FOLDS` rows and the choice is made on
#: cross-validation folds. The defaults' leaves of 20 rows cannot split fewer than 40 rows: on 36
#: rows of Rdatasets' btrial (KMsurv) the defaults' booster predicted one class for every row
#: (accuracy 0.444, the baseline), where the folds choose the linear model or the forest.
MIN_TRAINING_ROWS = 50
#: Above this many training rows the validation fit runs on a sample (:data:`LARGE_FITTING_ROWS`
#: fitting, :data:`LARGE_VALIDATION_ROWS` validation rows) and boosts at most
#: :data:`MAX_ROUNDS_LARGE` rounds: on 336k Adult-like rows the full-size validation fit (its loss
#: still falling at round 1000) made Train six times slower, and Lambda stops a function at 900 s.
LARGE_TABLE_ROWS = 100_000
LARGE_FITTING_ROWS = 80_000
LARGE_VALIDATION_ROWS = 20_000
MAX_ROUNDS_LARGE = 500
#: Rows x trees per round (x :data:`FOLDS` for a cross-validated choice) from which the booster
#: uses :data:`COSTLY_ROUND_PARAMS` (each unless the config fixes it, and only when the rounds are
#: chosen). Measured in bench/bench_models.py, 2 idle cores, with scikit-learn's HistGradientBoosting,
#: recipe settings -> rate 0.1 -> rate 0.1 and 63 leaves: nyc_weather (20,892 rows x 3 classes)
#: 0.6132 / 0.6090 / 0.6148 accuracy, fit 26.6 / 15.4 / 9.1 s; flights (261,910 rows) RMSE 7.76 /
#: 6.14 / 5.20, 38.5 / 34.4 / 39.8 s. With LightGBM, rate 0.1 -> 0.15 -> 0.2 (63 leaves):
#: nyc_weather 0.6200 / 0.6159 / 0.6157 accuracy (AutoGluon medium, 60 s: 0.6198), fit 8.0 / 6.0 /
#: 4.7 s; flights RMSE 4.17 -> 3.86 (AutoGluon 6.37; its rounds hit :data:`MAX_ROUNDS_LARGE` at
#: either rate), 34.5 -> 30.8 s; 127 leaves at rate 0.2: nyc_weather 0.6090. Counting the folds:
#: digits (1,438 rows x 10 classes x 3 folds) 6.8-7.4 -> 4.1 s, the same choice (the forest) and
#: test score. Under it the recipe's settings are kept: Adult (32,561 rows) at rate 0.1 fell
#: 0.8725 -> 0.8716 accuracy and under its 0.927 ROC AUC bound for a 5 s fit.
COSTLY_ROUND_ROW_TREES = 40_000
COSTLY_ROUND_PARAMS: dict[str, Any] = {"learning_rate": 0.2, "max_leaf_nodes": 63}
#: ... but where those rounds converge fast (the best of them under :data:`FINE_ROUNDS`) and a
#: fit at the recipe's own settings stays cheap (the fitting rows x trees per round x the rounds
#: it would boost: that best round times the rates' ratio, plus :data:`PATIENCE`; at most
#: :data:`FINE_ROW_TREE_ROUNDS`), the validation fit is made again at the recipe's settings on the
#: same one split, and kept when it validates better. A smooth target the coarse rounds draw in
#: a few dozen steps is drawn better by more, smaller ones: ggplot2's diamonds (43k rows, price)
#: stopped at round 38 of rate 0.2 and 63 leaves, RMSE 552 on the test rows (AutoGluon medium
#: 526); at rate 0.05 and 31 leaves 533; movies' rating (47k rows) 0.734 -> 0.723 (AutoGluon
#: 0.716). Tables whose coarse rounds run long (nyc_weather: 140 rounds x 3 classes; flights:
#: :data:`MAX_ROUNDS_LARGE`) keep them, and so do airports (56 classes, 10 coarse rounds: ~10.8M
#: row-tree-rounds), where the finer fit doubled the fit's time (4.0 -> 9.0 s) for a lower test
#: score (0.875 -> 0.870 balanced accuracy); diamonds' finer fit is ~7.0M, movies' ~6.5M.
FINE_ROUNDS = 100
FINE_ROW_TREE_ROUNDS = 8_000_000
#: On one held-out split whose rounds are not costly (:func:`costly_rounds`) and where a second
#: fit stays cheap (:func:`second_fit_cheap`), the booster is fitted again with these settings:
#: leaves of 2 rows, each split chosen among a random 70 % of the columns; kept when its
#: validation error is :data:`SMALL_LEAF_MARGIN` lower (:func:`clearly_better`). Measured
#: (bench/bench_models.py, test scores, the 13 single-split tables it is tried on): wages RMSE
#: 0.2901 -> 0.2866 (AutoGluon 0.2803), computers 152.2 -> 145.8 (144.3), benefits accuracy
#: 0.6944 -> 0.7036 (0.7046), Adult 0.8718 -> 0.8746 (0.8737), the others unchanged; over three
#: other seeds of the choice's split wages 0.2917 / 0.2933 / 0.2966 -> 0.2901 / 0.2866 / 0.2893,
#: computers 152.2 -> 148.1 / 146.5 / 147.0, Adult 0.8719 / 0.8722 / 0.8716 -> 0.8740 / 0.8722 /
#: 0.8716. Leaves of 3 or 5 rows among half the columns won the same tables but not benefits, and
#: as the default (no choice) they cost airports 0.8746 -> 0.8318 balanced accuracy and
#: randhie_raw 0.9875 -> 0.9589.
SMALL_LEAF_PARAMS: dict[str, Any] = {"min_samples_leaf": 2, "max_features": 0.7}
#: Without it California's leaves of 3 rows among half the columns won by 0.1 % of the validation
#: RMSE and tested 1.2 % worse (44,617 -> 45,141); a noisy smooth table's win by as little is no
#: win either (tests/unit/test_auto_selection.py).
SMALL_LEAF_MARGIN = 0.01
#: On one held-out split, when a text column holds more than this many categories, of
#: :data:`CATEGORY_ROWS` rows each on average (:func:`many_categories`), and a fit stays under
#: :data:`CATEGORY_ROW_TREE_ROUNDS` (:func:`category_fit_cheap`), the booster is fitted again with
#: the text columns as its categories (``categorical_features: from_dtype``: LightGBM's splits of
#: sets of categories, re-ordered by their gradients at each node, :mod:`stepml.booster`) on the
#: best settings so far, and kept when it validates clearly better (:func:`clearly_better`). The
#: codes in their target's order (:mod:`stepml.category_order`) are one order for the whole
#: table; a player's or a store's effect that depends on the other columns needs a different
#: set at each node. Measured (bench/bench_models.py, auto, every single-split table with text):
#: plyr's baseball (1,228 player IDs, 127 teams) validation RMSE 2.449 -> 2.315, test 2.284 ->
#: 2.193 (AutoGluon 2.167), fit 4.6 -> 6.7 s; it lost or tied on the tables whose text has a few
#: categories (California's 5, diamonds' 8, computers, chile, health_insurance, doctor_contacts,
#: wages, benefits, medexp: up to +1 s each), on Adult (41 countries: 0.8775 -> 0.8746 validation
#: accuracy) and on flights (5.91 -> 7.13 RMSE, +14 s); near-unique text (45k film titles: a
#: 0.85 % gain for +4 s; airports' 2,601 names) is a key, not categories.
MANY_CATEGORIES = 32
CATEGORY_ROWS = 10
#: ... on a table of this many training rows or more. A set of categories is a far freer split
#: than a threshold, and a few hundred validation rows let it win by their noise: on three
#: Rdatasets tables the bench had not seen (a seeded fifth held out) it validated 10-12 % better
#: and tested worse — Ecdat's SumHes savings rate (2,600 rows, 125 countries) 2.187 -> 2.319,
#: HSAUR's Forbes2000 market value (1,600 rows, 61 countries) 9.59 -> 9.99, and 9.85 -> 9.95 on
#: another seed of the choice's split (its profits: 1.390 -> 1.382). baseball's 17,359 rows: 2.284
#: -> 2.193.
CATEGORY_MIN_ROWS = 10_000
#: ... twice :data:`FINE_ROW_TREE_ROUNDS`: a text-heavy table's second fit (baseball: 13,887
#: fitting rows x 656 rounds = 9.1M, 2.0 s on one thread) is tried; flights' (80,000 x 542 =
#: 43M, 14 s) is not.
CATEGORY_ROW_TREE_ROUNDS = 16_000_000
#: Tables with fewer training rows than this, whose rounds grow at most
#: :data:`CROSS_VALIDATION_ROW_TREES` rows x trees (see :data:`COSTLY_ROUND_ROW_TREES`) and whose
#: every class has :data:`FOLDS` rows, choose on :data:`FOLDS`-fold cross-validation instead of one
#: held-out fifth: every training row is predicted once, out of fold, and the candidates are scored
#: on all of those predictions. A fifth of 1,169 rows (seattle_weather) holds 4 rows of its
#: rarest class: one split's balanced accuracy picked the linear model (0.757 vs the trees'
#: 0.717) that scored 0.710 on the test rows where the blend scored 0.780. The folds cost about
#: FOLDS times the one split's fits: digits (1,438 rows x 10 classes = 14,380 row-trees) 9.4 ->
#: 30.9 s on five folds, for 0.9806 -> 0.9920 balanced accuracy (the forest won on all its rows,
#: where one split had it tied with the blend). Three folds instead of five (bench/bench_models.py,
#: the 11 cross-validated tables, one run each): fit time 0.43-0.66 of five folds' (iris 2.0 ->
#: 0.8 s, digits 37.2 -> 21.7 s, with :data:`~stepml.model_family.FOREST_CHOICE_TREES` 50), the same
#: test score on 6, better on 3 (iris 0.900 -> 0.967, penguins 0.879 -> 0.924, anes96 0.878 ->
#: 0.894 accuracy), a little worse on 2 (diabetes RMSE 53.90 -> 54.18, seattle_weather 0.771 ->
#: 0.768): a third of the rows predicted by each fold is still every row predicted once.
CROSS_VALIDATION_ROWS = 1_500
CROSS_VALIDATION_ROW_TREES = 15_000
FOLDS = 3
#: The booster's default and largest ``max_bins``; :func:`exact_bins` chooses fewer when
#: every column holds fewer distinct values.
DEFAULT_BINS = 255
#: A small table's booster has at most one bin per this many training rows (:func:`booster_bins`),
#: and at least :data:`MIN_BINS`. On a few hundred rows each distinct value was its own bin: a
#: split is searched over every bin of every column, so a 303-row fold of 30 continuous columns
#: cost ~1 ms a round (LightGBM, one thread; 63 bins: 0.3 ms). Its leaves hold 20 rows at least,
#: so a cut placed to within 4 rows is as fine as they can use. Measured (bench/bench_models.py,
#: the 13 tables of at most 5,093 rows; one bin per 4 / 8 / 16 rows): breast_cancer fit 1.6 ->
#: 1.0 / 0.8 / 0.8 s; test scores at 4 the same on 11, penguins 0.909 -> 0.924 accuracy, diabetes
#: RMSE 54.10 -> 54.49 (AutoGluon 56.64); at 8 and 16 iris fell 0.967 -> 0.867.
ROWS_PER_BIN = 4
MIN_BINS = 16


@dataclass(frozen=True)
class AutoChoice:
    """The rounds and target transform chosen on the validation split, and how each candidate scored."""

    params: dict[str, Any]
    target_transform: str | None
    rounds: int | None
    validation_rows: int
    #: ``{candidate ("none" or a transform): {"rounds": best round, "score": primary metric}}``
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    #: the model family (:mod:`stepml.model_family`): the trees unless another validated better
    family: str = model_family.TREES
    #: ``{family: primary metric on the validation rows}`` (empty when families were not compared)
    families: dict[str, float] = field(default_factory=dict)
    #: the linear model's settings chosen on the validation split (the logistic model's ``C``)
    linear_params: dict[str, Any] = field(default_factory=dict)
    #: the booster settings chosen by a round's cost (:data:`COSTLY_ROUND_PARAMS`) and by the columns'
    #: distinct values (``max_bins``, :func:`exact_bins`); empty: the recipe's
    booster_params: dict[str, Any] = field(default_factory=dict)
    #: how many folds the choice was made on (1: one validation split; :data:`FOLDS`: cross-validated)
    folds: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "target_transform": self.target_transform, "family": self.family,
                "validation_rows": self.validation_rows, "candidates": self.candidates,
                "families": self.families, "linear_params": self.linear_params,
                "booster_params": self.booster_params, "folds": self.folds}


def choose(
    train: pd.DataFrame, target: str, schema: list[dict[str, Any]], task: str, config: DatasetConfig
) -> AutoChoice:
    """Rounds (and, for a skewed non-negative regression target, a log transform) for the final fit.

    The returned ``params`` are ``config.params`` with the chosen ``max_iter`` added.
    """
    fixed = dict(config.params)
    choose_rounds = "max_iter" not in fixed and "early_stopping" not in fixed
    labels = class_labels if task == "classification" else (lambda values: values.astype(float))
    y_all = labels(train[target]).to_numpy()
    transforms: list[str | None] = [None]
    if task == "regression" and target_transform.suits(y_all):
        transforms.append(target_transform.LOG1P)
    # A class_weight mapping's keys may be text where the labels are numbers (the booster matches
    # them; the validation loss's weights would not): the recipe's settings apply
    round_trees = trees_per_round(train, target, task)
    # under MIN_TRAINING_ROWS one split holds too few rows to choose on, but the folds of a
    # cross-validation predict every row: a table of 20-49 rows still chooses, on them
    too_few = len(train) < MIN_TRAINING_ROWS and not cross_validated(
        len(train), round_trees, smallest_class(train, target, task))
    if too_few or (not choose_rounds and len(transforms) == 1) or isinstance(fixed.get("class_weight"), dict):
        return AutoChoice(fixed, None, None, 0)
    folds = choice_folds(train, target, task, config, round_trees)
    costly = choose_rounds and costly_rounds(len(train), round_trees, len(folds))
    booster_params = {k: v for k, v in COSTLY_ROUND_PARAMS.items() if k not in fixed} if costly else {}
    if "max_bins" not in fixed and (bins := booster_bins(train, schema)) is not None:
        booster_params["max_bins"] = bins
    booster = {**fixed, **booster_params}
    # the text columns' codes in the booster's matrix; the user's "from_dtype" names them, as
    # build_pipeline reads it for the final fit
    codes = text_code_columns(build_pipeline(schema, task, config).named_steps["columns"].transformers)
    if "categorical_features" in booster:
        booster["categorical_features"] = text_categories(booster["categorical_features"], codes)
    max_rounds = MAX_ROUNDS_LARGE if len(train) > LARGE_TABLE_ROWS else MAX_ROUNDS
    compare_families = not fixed and model_family.suits(train, schema)
    metric = config.metric_for(task)
    higher_is_better = METRICS[task][metric]
    # each fold's validation rows, and every candidate's predictions for them, fold after fold
    y_checked: list[np.ndarray] = []
    trees: dict[str | None, tuple[list[int], list[np.ndarray]]] = {transform: ([], []) for transform in transforms}
    diverged: set[str | None] = set()  # the transforms whose validation curve diverged on a fold
    linear: list[list[tuple[dict[str, Any], np.ndarray]]] | None = [] if compare_families else None
    forest: list[np.ndarray] | None = [] if compare_families and len(train) <= model_family.FOREST_MAX_ROWS else None
    classes: np.ndarray | None = None
    matrices: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # one split's, to refit on
    for fitting, validation in folds:
        # the model frames once: the booster's columns and the linear model's are both made of them
        features, validating = to_model_frame(fitting, schema), to_model_frame(validation, schema)
        y_fit, y_val = labels(fitting[target]).to_numpy(), labels(validation[target]).to_numpy()
        columns = build_pipeline(schema, task, config).named_steps["columns"]
        category_order.apply(columns, features, y_fit, task)  # in the order of the fitting rows' target
        x_fit, x_val = columns.fit_transform(features), columns.transform(validating)
        matrices = (x_fit, y_fit, x_val, y_val)
        for transform in transforms:
            try:
                rounds, output, fold_classes, diverging = _validation_fit(
                    config, task, booster, choose_rounds, transform, x_fit, y_fit, x_val, y_val, max_rounds,
                    PATIENCE if len(folds) == 1 else FOLD_PATIENCE,
                )
            except (ValueError, TypeError, ArithmeticError):
                # e.g. a class absent from the fitting rows: choose nothing; the final fit on every
                # training row explains itself if the data cannot be fitted at all
                return AutoChoice(fixed, None, None, 0)
            if classes is not None and fold_classes is not None and list(fold_classes) != list(classes):
                return AutoChoice(fixed, None, None, 0)  # folds are stratified: not expected
            classes = fold_classes
            trees[transform][0].append(rounds)
            trees[transform][1].append(output)
            if diverging:
                diverged.add(transform)
        if linear is not None:
            outputs = model_family.linear_outputs(schema, task, config, features, validating, y_fit, classes)
            linear = None if outputs is None else [*linear, outputs]
        if forest is not None:
            grown = model_family.forest_output(config, task, x_fit, y_fit, x_val, classes)
            forest = None if grown is None else [*forest, grown]
        y_checked.append(y_val)
    y_val = np.concatenate(y_checked)
    # a log target's predictions smeared to a mean where the metric asks for one (target_transform)
    smear = (metric in target_transform.MEAN_METRICS and booster.get("loss", "squared_error") == "squared_error"
             and "output_offset" not in fixed)
    offsets: dict[str | None, float] = {}  # each transform's output_offset (the smearing's logarithm)

    def smeared(transform: str | None, output: np.ndarray) -> tuple[np.ndarray, float]:
        if transform != target_transform.LOG1P or not smear:
            return output, 0.0
        return target_transform.smeared(output, y_val)

    candidates: dict[str, dict[str, float]] = {}
    best: tuple[float, str | None, int, np.ndarray] | None = None
    for transform, (fold_rounds, fold_outputs) in trees.items():
        output, offsets[transform] = smeared(transform, np.concatenate(fold_outputs))
        score = model_family.validation_score(task, metric, y_val, output, classes)
        rounds = max(1, round(float(np.mean(fold_rounds))))
        candidates[transform or "none"] = {"rounds": rounds, "score": score}
        ranked = score if higher_is_better else -score
        if best is None or ranked > best[0]:
            best = (ranked, transform, rounds, output)
    assert best is not None
    _, transform, rounds, output = best
    # one more fit on the same split, kept when it validates better: the recipe's own, finer rounds
    # where the coarse ones converged fast, or small leaves where rounds are cheap
    best_ranked = best[0]
    second: tuple[str, dict[str, Any], dict[str, Any], Callable[[float], bool]] | None = None
    if costly and len(folds) == 1 and fine_rounds_cheap(len(folds[0][0]), round_trees, rounds):
        second = (f"{transform or 'none'} at the recipe's rate",
                  {k: v for k, v in booster.items() if k not in COSTLY_ROUND_PARAMS or k in fixed},
                  {k: v for k, v in booster_params.items() if k not in COSTLY_ROUND_PARAMS},
                  lambda score: (score if higher_is_better else -score) > best_ranked)
    elif (not costly and len(folds) == 1 and choose_rounds and not any(key in fixed for key in SMALL_LEAF_PARAMS)
            and second_fit_cheap(len(folds[0][0]), round_trees, rounds)):
        second = (f"{transform or 'none'} with small leaves", {**booster, **SMALL_LEAF_PARAMS},
                  {**booster_params, **SMALL_LEAF_PARAMS},
                  lambda score: clearly_better(score, best_ranked if higher_is_better else -best_ranked,
                                               higher_is_better))
    settings = booster  # the settings of the best fit so far
    if second is not None and matrices is not None:
        name, trial, kept_params, wins = second
        refit = _second_fit(config, task, trial, choose_rounds, transform, matrices, max_rounds)
        if refit is not None:
            refit_output, offset = smeared(transform, refit[1])
            score = model_family.validation_score(task, metric, y_val, refit_output, classes)
            candidates[name] = {"rounds": refit[0], "score": score}
            if wins(score):
                (rounds, _, diverging), booster_params, settings = refit, kept_params, trial
                output, offsets[transform] = refit_output, offset
                best_ranked = score if higher_is_better else -score
                diverged.discard(transform)
                if diverging:
                    diverged.add(transform)
    if (matrices is not None and codes and len(folds) == 1 and choose_rounds and "categorical_features" not in fixed
            and many_categories(train, schema) and category_fit_cheap(len(folds[0][0]), round_trees, rounds)):
        # then the text columns as the booster's categories, on the best settings so far
        refit = _second_fit(config, task, {**settings, "categorical_features": codes}, choose_rounds, transform,
                            matrices, max_rounds)
        if refit is not None:
            refit_output, offset = smeared(transform, refit[1])
            score = model_family.validation_score(task, metric, y_val, refit_output, classes)
            candidates[f"{transform or 'none'} with text as categories"] = {"rounds": refit[0], "score": score}
            if clearly_better(score, best_ranked if higher_is_better else -best_ranked, higher_is_better):
                rounds, _, diverging = refit
                output, offsets[transform] = refit_output, offset
                booster_params = {**booster_params, "categorical_features": FROM_DTYPE}
                diverged.discard(transform)
                if diverging:
                    diverged.add(transform)
    family: str = model_family.TREES
    families: dict[str, float] = {}
    linear_params: dict[str, Any] = {}
    if linear or forest:
        # each setting's predictions, fold after fold, as the trees' are stacked (none: the linear
        # model could not be fitted, and the forest is compared with the trees alone)
        stacked = [(settings, np.concatenate([fold[index][1] for fold in linear]))
                   for index, (settings, _) in enumerate(linear[0])] if linear else []
        family, families, linear_params = model_family.choose_family(
            task, config, metric, higher_is_better, y_val, output, stacked, classes, blend=transform is None,
            forest=np.concatenate(forest) if forest else None)
        if family in (model_family.LINEAR, model_family.FOREST):
            transform = None  # fitted on the target as it is
    params = dict(fixed)
    chosen_rounds = None
    if choose_rounds and family in (model_family.TREES, model_family.BLEND):
        # the fewest rounds are forced on a flat curve only: on a diverging one they make it worse
        chosen_rounds = max(1 if transform in diverged else MIN_ROUNDS, round(rounds * rounds_scale(len(folds))))
        params["max_iter"] = chosen_rounds
        if offsets.get(transform):
            booster_params = {**booster_params, "output_offset": round(offsets[transform], 6)}
        params.update(booster_params)
    else:
        booster_params = {}
    return AutoChoice(params, transform, chosen_rounds, len(y_val), candidates, family, families,
                      linear_params if family in (model_family.LINEAR, model_family.BLEND) else {}, booster_params,
                      len(folds))


def _second_fit(
    config: DatasetConfig, task: str, settings: dict[str, Any], choose_rounds: bool, transform: str | None,
    matrices: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], max_rounds: int,
) -> tuple[int, np.ndarray, bool] | None:
    """Another validation fit on one split's ``matrices`` with ``settings``: (its best round, its
    validation predictions, whether its curve diverged); None when it could not be fitted."""
    try:
        rounds, output, _, diverging = _validation_fit(
            config, task, settings, choose_rounds, transform, *matrices, max_rounds, PATIENCE)
    except (ValueError, TypeError, ArithmeticError):
        return None
    return (rounds, output, diverging) if rounds else None


def many_categories(train: pd.DataFrame, schema: list[dict[str, Any]]) -> bool:
    """Whether ``train`` has :data:`CATEGORY_MIN_ROWS` rows and a text column of more than
    :data:`MANY_CATEGORIES` categories of :data:`CATEGORY_ROWS` rows each on average: where the
    booster's categories are tried."""
    if len(train) < CATEGORY_MIN_ROWS:
        return False
    for spec in schema:
        if spec["kind"] == "categorical":
            count = int(train[spec["name"]].nunique(dropna=True))
            if count > MANY_CATEGORIES and len(train) >= CATEGORY_ROWS * count:
                return True
    return False


def category_fit_cheap(fitting_rows: int, round_trees: int, rounds: int) -> bool:
    """Whether the text columns as categories are fitted on a split of ``fitting_rows`` rows (rounds
    of ``round_trees`` trees, the best so far ``rounds``): :data:`CATEGORY_ROW_TREE_ROUNDS`."""
    return fitting_rows * round_trees * (rounds + PATIENCE) <= CATEGORY_ROW_TREE_ROUNDS


def clearly_better(score: float, than: float, higher_is_better: bool) -> bool:
    """Whether a validation ``score`` (a primary metric) is better ``than`` another by at least
    :data:`SMALL_LEAF_MARGIN` of its error: the metric itself where lower is better (RMSE, MAE),
    else its distance from a perfect 1 (accuracy, ROC AUC, R²)."""
    error, other = (1.0 - score, 1.0 - than) if higher_is_better else (score, than)
    return error <= (1.0 - SMALL_LEAF_MARGIN) * other


def booster_bins(train: pd.DataFrame, schema: list[dict[str, Any]]) -> int | None:
    """The booster's ``max_bins`` on ``train`` when fewer than :data:`DEFAULT_BINS` (None: 255):
    as many as the columns' distinct values (:func:`exact_bins`), and no more than one per
    :data:`ROWS_PER_BIN` training rows (at least :data:`MIN_BINS`)."""
    bins = min(exact_bins(train, schema) or DEFAULT_BINS, max(MIN_BINS, len(train) // ROWS_PER_BIN))
    return bins if bins < DEFAULT_BINS else None


def exact_bins(train: pd.DataFrame, schema: list[dict[str, Any]]) -> int | None:
    """The booster's ``max_bins`` that bins ``train``'s columns exactly as the default 255 does,
    when every feature holds fewer distinct values (None when one holds more: 255 stays).

    The booster (:mod:`stepml.booster`: LightGBM with one row per bin at least, as scikit-learn's
    HistGradientBoosting) gives each distinct value a bin of its own when a column has at most
    ``max_bins`` of them (quantiles only beyond), so any ``max_bins`` at least the most distinct
    values of any column grows the very same trees; but every node's histograms are
    ``max_bins`` wide in every column, so a table of small integers (digits' 64 pixels of 17 levels,
    codes, counts, categories) pays for 255 bins it never fills. Counted on the raw columns, which
    hold at least as many distinct values as the booster's (a date's parts, numbers read from
    text, text codes), without making the matrix: two more, for a value a fit's column transformer
    may add (a median imputed, the code of missing text, of a category its rows did not hold).
    Measured (digits, 958 rows, 100 rounds x 10 classes): 17 bins 2.6-3.0 s, 255 bins 4.4-5.5 s,
    the same probabilities."""
    most = 0
    for spec in schema:
        most = max(most, int(train[spec["name"]].nunique(dropna=True)))
        if most + 2 >= DEFAULT_BINS:
            return None
    return most + 2


def rounds_scale(folds: int) -> float:
    """How many times a validation fit's rows the final fit sees (it boosts that many times the
    best round): :data:`ROUNDS_SCALE` for one held-out split, FOLDS / (FOLDS - 1) for a fold's
    fitting rows (half as many again for three folds)."""
    return ROUNDS_SCALE if folds == 1 else folds / (folds - 1)


def trees_per_round(train: pd.DataFrame, target: str, task: str) -> int:
    """The trees a boosting round grows on ``train``: one per class for three or more classes, else one."""
    class_count = int(train[target].nunique()) if task == "classification" else 1
    return class_count if class_count > 2 else 1


def costly_rounds(rows: int, round_trees: int, folds: int) -> bool:
    """Whether a round grows trees over at least :data:`COSTLY_ROUND_ROW_TREES` rows: the training
    ``rows`` times the trees a round grows (:func:`trees_per_round`) times the ``folds`` the choice
    boosts each round on (:func:`choice_folds`), where the booster uses :data:`COSTLY_ROUND_PARAMS`."""
    return rows * round_trees * folds >= COSTLY_ROUND_ROW_TREES


def second_fit_cheap(fitting_rows: int, round_trees: int, rounds: int) -> bool:
    """Whether another validation fit on ``fitting_rows`` rows of ``round_trees`` trees a round,
    whose best round is near ``rounds`` (it boosts :data:`PATIENCE` more), grows at most
    :data:`FINE_ROW_TREE_ROUNDS` row-tree-rounds: :data:`SMALL_LEAF_PARAMS` are tried only then."""
    return fitting_rows * round_trees * (rounds + PATIENCE) <= FINE_ROW_TREE_ROUNDS


def fine_rounds_cheap(fitting_rows: int, round_trees: int, coarse_rounds: int) -> bool:
    """Whether the validation fit is tried again at the recipe's rate after :data:`COSTLY_ROUND_PARAMS`'
    best round was ``coarse_rounds``, on ``fitting_rows`` rows of ``round_trees`` trees a round
    (:data:`FINE_ROUNDS`, :data:`FINE_ROW_TREE_ROUNDS`)."""
    finer = COSTLY_ROUND_PARAMS["learning_rate"] / AUTO_PARAMS["learning_rate"]
    fine_rounds = coarse_rounds * finer + PATIENCE
    return coarse_rounds < FINE_ROUNDS and fitting_rows * round_trees * fine_rounds <= FINE_ROW_TREE_ROUNDS


def smallest_class(train: pd.DataFrame, target: str, task: str) -> int:
    """The rows of ``train``'s rarest class (classification), else all its rows."""
    return int(train[target].value_counts().min()) if task == "classification" else len(train)


def cross_validated(rows: int, round_trees: int, smallest: int) -> bool:
    """Whether the choice on a table of ``rows`` training rows (rounds of ``round_trees`` trees; its
    rarest class of ``smallest`` rows) is made on :data:`FOLDS` cross-validation folds rather than
    one held-out split (:func:`choice_folds`)."""
    return rows < CROSS_VALIDATION_ROWS and rows * round_trees <= CROSS_VALIDATION_ROW_TREES and smallest >= FOLDS


def choice_folds(
    train: pd.DataFrame, target: str, task: str, config: DatasetConfig, round_trees: int
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(fitting rows, validation rows) of each fold the choice is made on: :data:`FOLDS`
    cross-validation folds on a small table (:func:`cross_validated`; stratified: every class in
    each fold's fitting rows), else one split holding out :data:`VALIDATION_SIZE` of the rows (a
    sample of a large table's). ``round_trees``: the trees a boosting round grows
    (:func:`trees_per_round`)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    seed = config.split.seed
    smallest = smallest_class(train, target, task)
    stratify = train[target] if task == "classification" and smallest >= 2 else None
    if len(train) > LARGE_TABLE_ROWS:
        fitting, validation = train_test_split(
            train, train_size=LARGE_FITTING_ROWS, test_size=LARGE_VALIDATION_ROWS, random_state=seed,
            stratify=stratify,
        )
        return [(fitting, validation)]
    if cross_validated(len(train), round_trees, smallest):
        splitter = (StratifiedKFold(FOLDS, shuffle=True, random_state=seed) if task == "classification"
                    else KFold(FOLDS, shuffle=True, random_state=seed))
        return [(train.iloc[fit], train.iloc[check]) for fit, check in splitter.split(train, train[target])]
    fitting, validation = train_test_split(train, test_size=VALIDATION_SIZE, random_state=seed, stratify=stratify)
    return [(fitting, validation)]


def _validation_fit(
    config: DatasetConfig, task: str, fixed: dict[str, Any], choose_rounds: bool, transform: str | None,
    x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, max_rounds: int = MAX_ROUNDS,
    patience: int = PATIENCE,
) -> tuple[int, np.ndarray, np.ndarray | None, bool]:
    """Fit the recipe's booster on the fitting rows; (its best round, its validation predictions
    there — class probabilities, or values on the target's own scale —, the classes, and whether
    its validation curve diverged: see :data:`DIVERGING_LOSS_RATIO`)."""
    model = estimator(config, task, fixed)
    if choose_rounds:
        model.set_params(max_iter=max_rounds, early_stopping=True, n_iter_no_change=patience, tol=0.0)
    else:  # the user's rounds: only the transform is compared
        model.set_params(early_stopping=True, n_iter_no_change=model.max_iter, tol=0.0)
    # the booster weights classes in its training loss only; weigh the validation loss alike
    weights = None if getattr(model, "class_weight", None) is None else compute_sample_weight(model.class_weight, y_val)
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        model.fit(x_fit, target_transform.forward(y_fit, transform), X_val=x_val,
                  y_val=target_transform.forward(y_val, transform), sample_weight_val=weights)
        losses = -np.asarray(model.validation_score_)  # after 0, 1, 2, ... rounds
        rounds = max(1, int(np.argmin(losses))) if choose_rounds else len(losses) - 1
        output = output_after(model, rounds, x_val, task)
    diverging = len(losses) > 1 and bool(losses[-1] > DIVERGING_LOSS_RATIO * losses[1])
    if task == "classification":
        return rounds, output, model.classes_, diverging
    return rounds, target_transform.inverse(output, transform), None, diverging


def output_after(model: Any, rounds: int, x_val: np.ndarray, task: str) -> np.ndarray:
    """A fitted booster's predictions for ``x_val`` after its first ``rounds`` rounds (class
    probabilities, or values on the scale it was fitted on): its best round, where early stopping
    boosted on past it."""
    if task == "classification":
        return np.asarray(model.predict_proba(x_val, rounds=rounds))
    return np.asarray(model.predict(x_val, rounds=rounds))
