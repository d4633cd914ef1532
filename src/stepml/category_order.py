"""Text categories coded in the order of their target, for the ``auto`` recipe's trees.

The auto recipe codes text as integers (scikit-learn's ``OrdinalEncoder``) and its booster splits
those codes as numbers: ``code <= t`` sends every category coded up to ``t`` one way. In the
encoder's own order (alphabetical) neighbouring codes have nothing in common, so a tree needs many
splits to gather the categories that predict alike, and with hundreds of categories (a player ID, a
product code) it cannot. Coded in the order of their rows' target, the categories that predict
alike are neighbours and one split separates the low from the high: what LightGBM's own
categorical splits and CatBoost's target statistics do, here as a plain ``OrdinalEncoder`` whose
``categories`` are given in that order, so the pipeline still converts to ONNX as it did and
serving is unchanged (an unseen category still gets code -1).

The order is read off the rows the encoder is fitted on, never the rows it is judged on (each
validation fold's fitting rows in :mod:`stepml.auto_selection` and :mod:`stepml.tuning`; the
training split for the final fit):

* each category's score is the mean of its rows' target, as ranks (regression: the target's
  rank among all rows, so a long tail does not decide the order and a log target orders alike;
  two classes: the second class's share), shrunk towards the mean of all rows by
  :data:`SMOOTHING` rows' worth of it;
* a category of fewer than :data:`MIN_ROWS` rows is not ordered by its own rows: it scores the
  mean of all rows. A category seen once would otherwise be placed by its one target, and a tree
  could gather the rare categories by the very targets it is fitted on (a film's title: 58,788
  rows, almost one each);
* ties (among them every rare category) keep the alphabetical order.

Three or more classes keep the alphabetical order: no one order of the categories suits every
class's trees.

Measured on the booster's validation loss (squared error, or log loss) over five random 80/20
splits of each bench table's training rows, alphabetical -> target's order: lower on 5 of 5
splits on Adult (-0.7 %), California (-1.0 %) and diamonds (-1.6 %, its grades), on 4 of 5 on
plyr's baseball (-1.8 %: home runs, a player ID of 1,228 values); within +-0.4 % on cars, movies,
benefits, health_insurance, medexp and doctor_contacts. Ordering only the columns of 10 categories
or more was tried and dropped (flights' test RMSE 3.86 -> 4.04; California and cars lost their
gains). Test scores: README, "`auto` beside AutoGluon".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Categories with fewer rows than this score the mean of all rows (see the module's docstring).
MIN_ROWS = 10
#: Pseudo-rows of the overall mean added to every category's mean.
SMOOTHING = 10.0


def target_scores(y: np.ndarray, task: str) -> np.ndarray | None:
    """What a category's rows are averaged on: the target's ranks in (0, 1] (regression), 1.0 for
    the second of two classes (sorted labels) and 0.0 for the first; None for three or more
    classes (or one)."""
    values = np.asarray(y)
    if task == "regression":
        from scipy.stats import rankdata

        return np.asarray(rankdata(values.astype(float)), dtype=float) / len(values)
    classes = np.unique(values)
    if len(classes) != 2:
        return None
    return (values == classes[1]).astype(float)


def target_order(values: pd.Series, scores: np.ndarray) -> list[str]:
    """``values``' categories (text), ordered by their rows' smoothed mean score (ties by name)."""
    frame = pd.DataFrame({"category": values.to_numpy(dtype=object), "score": scores})
    stats = frame.groupby("category", sort=True)["score"].agg(["sum", "count"])
    prior = float(scores.mean())
    smoothed = (stats["sum"] + SMOOTHING * prior) / (stats["count"] + SMOOTHING)
    smoothed[stats["count"] < MIN_ROWS] = prior
    ordered = pd.DataFrame({"score": smoothed.to_numpy(), "category": stats.index.to_numpy(dtype=object)})
    return [str(c) for c in ordered.sort_values(["score", "category"], kind="stable")["category"]]


def apply(columns: Any, features: pd.DataFrame, y: Any, task: str) -> None:
    """Give every ``OrdinalEncoder`` of the (unfitted) column transformer ``columns`` its
    categories in the target's order on ``features`` (the model frame it is about to be fitted on)
    and their target ``y``; nothing for three or more classes."""
    from sklearn.preprocessing import OrdinalEncoder

    scores = target_scores(np.asarray(y), task)
    if scores is None:
        return
    for name, transformer, names in columns.transformers:
        if isinstance(transformer, OrdinalEncoder) and len(names):
            orders = [np.array(target_order(features[column], scores), dtype=object) for column in names]
            columns.set_params(**{f"{name}__categories": orders})
