"""Build and fit the model: one scikit-learn Pipeline (ColumnTransformer + estimator).

The fitted Pipeline is the artifact: preprocessing and model travel together, so training and
serving cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OrdinalEncoder

from stepml.config import DatasetConfig
from stepml.errors import ConfigError
from stepml.preprocessing import class_labels, to_model_frame


def build_pipeline(schema: list[dict[str, Any]], task: str, config: DatasetConfig) -> Pipeline:
    """The recipe's untrained Pipeline for these features."""
    if config.recipe != "seed-a":
        raise ConfigError(f"unknown recipe {config.recipe!r}")
    numeric = [f["name"] for f in schema if f["kind"] == "numeric"]
    categorical = [f["name"] for f in schema if f["kind"] == "categorical"]
    # Seed A: label-encode categoricals and min-max scale numbers in front of a RandomForest.
    # Categories unseen in training map to -1 rather than failing the request.
    transformers: list[tuple[str, Any, list[str]]] = []
    if categorical:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        transformers.append(("categorical", encoder, categorical))
    if numeric:
        transformers.append(("numeric", MinMaxScaler(), numeric))
    columns = ColumnTransformer(transformers, remainder="drop")
    estimator: Any
    if task == "classification":
        estimator = RandomForestClassifier(n_estimators=100, random_state=config.seed, n_jobs=-1)
    else:
        estimator = RandomForestRegressor(n_estimators=100, random_state=config.seed, n_jobs=-1)
    return Pipeline([("columns", columns), ("model", estimator)])


def fit(
    train: pd.DataFrame, target: str, schema: list[dict[str, Any]], task: str, config: DatasetConfig
) -> Pipeline:
    """Fit the recipe on the training split."""
    pipeline = build_pipeline(schema, task, config)
    y = train[target]
    if task == "classification":
        y = class_labels(y)
    pipeline.fit(to_model_frame(train, schema), y)
    return pipeline
