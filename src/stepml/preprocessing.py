"""Clean a validated table and split it into training and test sets; describe its features.

The transforms that must also run at prediction time (encoding, scaling) are not applied here:
they live inside the fitted scikit-learn Pipeline (:mod:`stepml.training`), so serving applies
exactly what training learned.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from stepml.config import DatasetConfig
from stepml.validation import column_kind


def clean(frame: pd.DataFrame, target: str, config: DatasetConfig) -> pd.DataFrame:
    """Drop configured columns and rows without a target; seed A also drops incomplete rows."""
    frame = frame.drop(columns=list(config.drop_columns))
    frame = frame[frame[target].notna()]
    if config.recipe == "seed-a":
        frame = frame.dropna()
    return frame.reset_index(drop=True)


def split(
    frame: pd.DataFrame, target: str, task: str, config: DatasetConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A hold-out split (stratified for classification when every class has two rows)."""
    stratify = None
    if task == "classification" and frame[target].value_counts().min() >= 2:
        stratify = frame[target]
    train, test = train_test_split(
        frame, test_size=config.test_size, random_state=config.seed, stratify=stratify
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def feature_schema(train: pd.DataFrame, target: str) -> list[dict[str, Any]]:
    """What a prediction request must send: one entry per feature, learned from training rows."""
    schema: list[dict[str, Any]] = []
    for name in train.columns:
        if name == target:
            continue
        series = train[name]
        entry: dict[str, Any] = {"name": name, "kind": column_kind(series), "required": True}
        if entry["kind"] == "numeric":
            entry["min"] = float(series.min()) if series.notna().any() else None
            entry["max"] = float(series.max()) if series.notna().any() else None
        else:
            entry["categories"] = sorted(str(v) for v in series.dropna().unique())
        schema.append(entry)
    return schema


def to_model_frame(frame: pd.DataFrame, schema: list[dict[str, Any]]) -> pd.DataFrame:
    """Columns in schema order with the dtypes the pipeline was fitted on (text or float)."""
    columns: dict[str, pd.Series] = {}
    for entry in schema:
        series = frame[entry["name"]]
        if entry["kind"] == "numeric":
            columns[entry["name"]] = pd.to_numeric(series, errors="coerce").astype("float64")
        else:
            columns[entry["name"]] = series.astype("object").where(series.notna(), None).map(
                lambda v: v if v is None else str(v)
            )
    return pd.DataFrame(columns, index=frame.index)


def class_labels(target: pd.Series) -> pd.Series:
    """Class labels as the user wrote them: whole numbers stay numbers, anything else is text."""
    if pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        if (target == target.round()).all():
            return target.astype("int64")
    return target.astype(str)
