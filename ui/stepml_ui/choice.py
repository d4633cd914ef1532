"""What the ``auto`` recipe chose before a version's final fit, as the Models page shows it.

A version's ``auto_choice`` (:class:`stepml.contracts.AutoChoiceSummary`) names the model family,
its boosting rounds and target transform, and each family's validation score by the version's
primary metric. Pure functions (no Streamlit): a short summary for the versions table and a
chart-ready frame of the families' scores, with its titles. The full one-line description is the
CLI's (:func:`stepml.describe.describe_auto_choice`), so both say the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from stepml.config import METRICS
from stepml.model_family import BLEND, FAMILIES, TREES

#: The chart frame's columns: each family's validation score, and whether the recipe chose it.
SCORE_COLUMNS = ["family", "score", "chosen"]


def summary(choice: Mapping[str, Any] | None) -> str:
    """A few words for a table cell ("trees, 304 rounds, log1p target"); empty without a choice
    (a version trained by another recipe)."""
    if not choice:
        return ""
    family = str(choice.get("family", ""))
    parts = [family]
    # A forest grows a fixed number of trees and a linear model has no rounds: only the boosted
    # families' rounds say something about the fit.
    if family in (TREES, BLEND) and choice.get("rounds") is not None:
        parts.append(f"{choice['rounds']} rounds")
    if choice.get("target_transform"):
        parts.append(f"{choice['target_transform']} target")
    return ", ".join(parts)


def tuned_summary(tuning: Mapping[str, Any] | None) -> str:
    """A few words for a tuned version's table cell ("tuned: blend of 3 boosters and the linear
    model"); empty when ``tune`` did not run (or the version predates its record)."""
    if not tuning:
        return ""
    family = str(tuning.get("family") or TREES)
    boosters = len(tuning.get("ensemble") or [])
    trees = f"{boosters} boosters" if boosters > 1 else "1 booster"
    kept = {"forest": "forest", "linear": "linear", "blend": f"blend of {trees} and the linear model"}.get(family, trees)
    return f"tuned: {kept}"


def higher_is_better(evaluation: Mapping[str, Any]) -> bool:
    """Whether the version's primary metric rewards larger values: as its evaluation recorded it,
    else as the metric's definition says (RMSE and MAE are errors; unknown metrics are scores)."""
    recorded = evaluation.get("higher_is_better")
    if isinstance(recorded, bool):
        return recorded
    name = evaluation.get("primary_metric")
    for task_metrics in METRICS.values():
        if name in task_metrics:
            return task_metrics[name]
    return True


def family_scores(choice: Mapping[str, Any]) -> pd.DataFrame:
    """One row per family that was scored, in the recipe's order (unknown families last), with
    ``chosen`` true for the family of the final fit. Empty when no family was scored (a large table,
    or a version trained on Spark)."""
    families = choice.get("families") or {}
    # the registry's JSON may come back with its keys sorted: list them in the recipe's (tie) order
    ordered = sorted(families, key=lambda name: (FAMILIES.index(name) if name in FAMILIES else len(FAMILIES), name))
    rows = [{"family": name, "score": float(families[name]), "chosen": name == choice.get("family")}
            for name in ordered]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def score_domain(scores: pd.DataFrame) -> tuple[float, float]:
    """The score axis's extent: from half the families' spread below the lowest score (no lower than
    zero when every score is at least zero) to a little above the highest. The families often score
    within a point of each other, alike on an axis from zero; this way the lowest bar still shows."""
    low, high = float(scores["score"].min()), float(scores["score"].max())
    spread = high - low or abs(high) * 0.02 or 0.01  # one family, or all equal: a bar of its own still
    start = low - spread / 2
    return (max(start, 0.0) if low >= 0 else start), high + spread / 20


def score_axis_title(primary_metric: str | None, larger_is_better: bool) -> str:
    """The score axis's title: the metric, and which way is better."""
    return f"validation {primary_metric or 'score'} ({'higher' if larger_is_better else 'lower'} is better)"


def validation_title(choice: Mapping[str, Any]) -> str:
    """How the families were scored: k-fold cross-validation or one held-out split, and on how many rows."""
    folds = int(choice.get("folds") or 1)
    rows = f"{int(choice.get('validation_rows') or 0):,}"
    if folds > 1:
        return f"{folds}-fold cross-validation ({rows} rows)"
    return f"one validation split ({rows} rows)"
