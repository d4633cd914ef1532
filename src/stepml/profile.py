"""A version's reference profile: what its training data and test predictions looked like.

Computed in "Evaluate and register" and stored with the version (``profile.json``, written before
``meta.json``, so every visible version has one). The monitor compares captured traffic with it
(:mod:`stepml.monitoring`). Numbers are summarised by :data:`BINS` quantile bins, categories by
their :data:`TOP_CATEGORIES` most frequent values plus :data:`OTHER`; each feature also keeps its
missing rate. The same binning (:func:`numeric_frequencies`, :func:`categorical_frequencies`)
summarises the traffic, so reference and current frequencies are comparable bin by bin.

Date features are summarised as numbers: days since 1970-01-01 of the parsed date.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

SCHEMA = 1
#: Quantile bins of a numeric feature.
BINS = 10
#: Categories kept by name; the rest are counted together as :data:`OTHER`.
TOP_CATEGORIES = 20
OTHER = "__other__"


def is_missing(value: Any) -> bool:
    """None, NaN and empty text are missing (as a prediction request may send them)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip() == ""


def _numeric_column(values: Any) -> bool:
    """A pandas Series (or numpy array) of numbers, not booleans: counted vectorised."""
    dtype = getattr(values, "dtype", None)
    return isinstance(dtype, np.dtype) and dtype.kind in "iuf"


def _text_column(values: Any) -> bool:
    """A pandas Series of objects (text, missing values): counted vectorised."""
    return getattr(values, "dtype", None) == object and hasattr(values, "value_counts")


def as_numbers(values: Iterable[Any]) -> np.ndarray:
    """Present values as floats; text that is not a number becomes NaN (counted as missing)."""
    if _numeric_column(values):
        return np.asarray(values, dtype="float64")
    out = []
    for value in values:
        if is_missing(value) or isinstance(value, bool):
            out.append(math.nan)
            continue
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.asarray(out, dtype="float64")


def numeric_edges(numbers: np.ndarray, bins: int = BINS) -> list[float]:
    """Quantile edges (at most ``bins`` bins; fewer when values repeat), first = min, last = max."""
    present = numbers[~np.isnan(numbers)]
    if present.size == 0:
        return []
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
    if edges.size == 1:
        return [float(edges[0]), float(edges[0])]
    return [float(e) for e in edges]


def numeric_frequencies(numbers: np.ndarray, edges: Sequence[float]) -> list[float]:
    """The share of present values in each bin of ``edges``; values outside fall in the end bins."""
    present = numbers[~np.isnan(numbers)]
    count = max(len(edges) - 1, 1)
    if present.size == 0:
        return [0.0] * count
    index = np.searchsorted(np.asarray(edges[1:-1], dtype="float64"), present, side="right")
    counts = np.bincount(index, minlength=count)[:count]
    return [float(c) / present.size for c in counts]


def _present_text_counts(values: Any) -> tuple[dict[str, int], int]:
    """How often each present value occurs, as ``str`` gives it, and how many are missing
    (:func:`is_missing`); a pandas Series of objects is counted vectorised."""
    dtype = getattr(values, "dtype", None)
    if hasattr(values, "cat") and getattr(dtype, "name", None) == "category":
        # text held as categories (the stages read splits so): counted by code, each text once
        counts = values.value_counts(dropna=True, sort=False)
        text = counts.index.astype(str)
        blank = (text.str.strip() == "") | (counts.to_numpy() == 0)
        found = {str(k): int(v) for k, v in zip(text[~blank], counts.to_numpy()[~blank], strict=True)}
        return found, len(values) - sum(found.values())
    if _text_column(values):
        present = values.dropna()
        text = present.astype(str)
        blank = text.str.strip() == ""
        counts = text[~blank].value_counts(sort=False)
        return {str(k): int(v) for k, v in counts.items()}, len(values) - len(present) + int(blank.sum())
    counted: Counter[str] = Counter()
    missing = 0
    for value in values:
        if is_missing(value):
            missing += 1
        else:
            counted[str(value)] += 1
    return dict(counted), missing


def categorical_frequencies(values: Iterable[Any], categories: Sequence[str]) -> list[float]:
    """The share of present values per category (``categories`` ends in :data:`OTHER`)."""
    known = {c: i for i, c in enumerate(categories)}
    other = known.get(OTHER, len(categories) - 1)
    counts = [0] * len(categories)
    found, _ = _present_text_counts(values)
    for value, count in found.items():
        counts[known.get(value, other)] += count
    total = sum(found.values())
    return [c / total if total else 0.0 for c in counts]


def missing_rate(values: Sequence[Any]) -> float:
    if not len(values):
        return 0.0
    if _numeric_column(values):
        return float(np.isnan(np.asarray(values, dtype="float64")).mean())
    return _present_text_counts(values)[1] / len(values)


def describe_numeric(name: str, values: Sequence[Any]) -> dict[str, Any]:
    numbers = as_numbers(values)
    edges = numeric_edges(numbers)
    present = numbers[~np.isnan(numbers)]
    return {
        "name": name,
        "kind": "numeric",
        "missing_rate": float(np.isnan(numbers).mean()) if numbers.size else 0.0,
        "min": float(present.min()) if present.size else None,
        "max": float(present.max()) if present.size else None,
        "edges": edges,
        "frequencies": numeric_frequencies(numbers, edges) if edges else [],
    }


def describe_categorical(name: str, values: Sequence[Any]) -> dict[str, Any]:
    counts, _ = _present_text_counts(values)
    top = [c for c, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]]
    categories = [*top, OTHER]
    return {
        "name": name,
        "kind": "categorical",
        "missing_rate": missing_rate(values),
        "categories": categories,
        "frequencies": categorical_frequencies(values, categories),
    }


def date_numbers(values: Iterable[Any]) -> list[float | None]:
    """Days since 1970-01-01 of each date text (None when missing or unreadable)."""
    import pandas as pd

    parsed = pd.to_datetime(pd.Series([v if isinstance(v, str) else None for v in values], dtype="object"),
                            errors="coerce", utc=True, format="mixed")
    epoch = pd.Timestamp(0, tz="UTC")
    return [None if pd.isna(p) else (p - epoch).total_seconds() / 86400 for p in parsed]


def describe_feature(entry: dict[str, Any], values: Sequence[Any]) -> dict[str, Any]:
    """The profile of one schema feature (``entry``: name and kind) over its training values."""
    if entry["kind"] == "numeric":
        return describe_numeric(entry["name"], values)
    if entry["kind"] == "date":
        return {**describe_numeric(entry["name"], date_numbers(list(values))), "date": True}
    return describe_categorical(entry["name"], values)


def build_profile(
    columns: dict[str, Sequence[Any]],
    schema: list[dict[str, Any]],
    task: str,
    predictions: Sequence[Any],
    metrics: dict[str, Any],
    confidence: float | None = None,
) -> dict[str, Any]:
    """The reference profile (``profile.json``) of a version.

    Parameters
    ----------
    columns
        The training split's values of each schema feature, by name (missing as None/NaN): lists,
        or the split's pandas columns (counted vectorised, to the same profile).
    schema
        The version's features (``schema.json``).
    task
        ``classification`` or ``regression``: how predictions are summarised.
    predictions
        The model's predictions on the test split (labels or numbers).
    metrics
        The version's test-split metrics (:func:`stepml.evaluation.evaluate`'s ``metrics``).
    confidence
        Classifiers: the mean highest class probability on the test split (the label-free
        estimate's calibration point: it is compared with the test accuracy).
    """
    rows = len(next(iter(columns.values()))) if columns else 0
    features = [describe_feature(entry, columns[entry["name"]]) for entry in schema]
    if task == "classification":
        import pandas as pd

        # as text, counted vectorised (a list of labels is counted one by one)
        prediction = describe_categorical("prediction", pd.Series([str(p) for p in predictions], dtype=object))
        if confidence is not None:
            prediction["confidence"] = float(confidence)
    else:
        prediction = describe_numeric("prediction", list(predictions))
    return {"schema": SCHEMA, "rows": rows, "task": task, "features": features,
            "prediction": prediction, "metrics": metrics}
