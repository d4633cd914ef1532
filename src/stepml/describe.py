"""What a version's record says in words: the ``auto`` recipe's choice and ``tune``'s search, one
line each, as ``stepml models show`` prints them and the web UI's Models page shows them (no
console or CLI library here, so the UI imports it alone)."""

from __future__ import annotations

import math
from typing import Any

from stepml.contracts import AutoChoiceSummary, TuningSummary
from stepml.model_family import FOREST_TREES


def metric(value: Any) -> str:
    return "" if value is None else f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"


def validated_on(folds: int, rows: int) -> str:
    """Where a choice was scored: k-fold cross-validation (every row out of fold) or one split."""
    return f"{folds}-fold cross-validation ({rows:,} rows, each out of fold)" if folds > 1 else f"{rows:,} validation rows"


def _setting(key: str, value: Any) -> str:
    """A booster setting the choice made, in words (``categorical_features: from_dtype``: the text
    columns as the booster's categories, :data:`stepml.recipes.FROM_DTYPE`; ``output_offset``: the
    logarithm of a log target's smearing factor, :func:`stepml.target_transform.smeared`)."""
    if key == "categorical_features":
        return "text columns as the booster's categories" if value == "from_dtype" else f"categorical features {value}"
    if key == "output_offset" and isinstance(value, (int, float)):  # a log target's smearing (target_transform)
        return f"the log target's smearing factor {math.exp(value):.3g}"
    return f"{key.replace('_', ' ')} {value:g}" if isinstance(value, (int, float)) else f"{key.replace('_', ' ')} {value}"


def describe_auto_choice(choice: AutoChoiceSummary, primary_metric: str | None) -> str:
    """One line on what the auto recipe chose on its validation split (a version's ``auto_choice``)."""
    family = choice["family"]
    parts = [f"model: {family}"]
    if family == "forest":
        parts.append(f"{choice.get('forest_trees', FOREST_TREES)} extremely randomised trees")
    elif family != "linear":
        rounds = choice.get("rounds")
        parts.append(f"{rounds} boosting rounds" if rounds is not None else "the recipe's default rounds")
        if choice.get("booster_params"):
            parts.append(", ".join(_setting(key, value) for key, value in choice["booster_params"].items()))
    if family != "trees" and choice.get("linear_params"):
        parts.append("linear " + ", ".join(f"{key}={value:g}" for key, value in choice["linear_params"].items()))
    if choice.get("target_transform"):
        parts.append(f"target fitted as {choice['target_transform']}")
    where = validated_on(choice.get("folds", 1), choice.get("validation_rows", 0))
    line = f"auto recipe's choice on {where}: " + ", ".join(parts)
    families = choice["families"]
    if families:
        # the registry's JSON may come back with its keys sorted: trees, linear, blend (the tie order)
        known = ("trees", "linear", "blend", "forest")
        ordered = sorted(families, key=lambda name: known.index(name) if name in known else len(known))
        scores = ", ".join(f"{name} {metric(families[name])}" for name in ordered)
        line += f" (validation {primary_metric or 'score'}: {scores})"
    return line


def describe_tuning(tuning: TuningSummary) -> str:
    """One line on what ``tune`` searched and kept (a version's ``tuning``)."""
    where = validated_on(tuning.get("folds", 1), tuning["validation_rows"])
    line = f"tune: {tuning['trials']} trials in {tuning['seconds']} s on {where}"
    boosters = len(tuning["ensemble"])
    family = tuning.get("family", "trees")
    if family == "forest":
        trees = tuning.get("forest_trees", FOREST_TREES)
        kept = f"the forest ({trees} extremely randomised trees), which validated better than the search"
    else:
        kept = f"the average of its {boosters} best boosters" if boosters > 1 else "its best booster"
        if family in ("linear", "blend") and tuning.get("linear_params"):
            settings = ", ".join(f"{key}={value:g}" for key, value in tuning["linear_params"].items())
            kept = (f"the linear model ({settings})" if family == "linear"
                    else f"{kept} blended with the linear model ({settings}, weight {tuning.get('linear_weight', 0):g})")
    if "final_fit_seconds" in tuning and family in ("trees", "blend"):
        kept += f" (whose fit the search estimated at {tuning['final_fit_seconds']} s)"
    line += f"; kept {kept}; validation {tuning['metric']}: best trial {metric(tuning['validation_score'])}"
    if "forest_score" in tuning and "searched_score" in tuning:
        line += f", searched model {metric(tuning['searched_score'])}, forest {metric(tuning['forest_score'])}"
    return line
