"""A booster trained on class codes answers in the user's labels, in scikit-learn and in ONNX."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from stepml import onnx_export
from stepml.config import DatasetConfig
from stepml.labelled_classifier import LabelledClassifier, unwrap
from stepml.onnx_model import META_CLASSES
from stepml.onnx_verify import compare
from stepml.preprocessing import feature_schema
from stepml.recipes import build_pipeline


def table(rows: int, labels: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "blue"], size=rows)
    bins = np.digitize(x + (colour == "red"), np.linspace(-1, 2, len(labels) - 1))
    return pd.DataFrame({"x": x, "colour": colour, "label": np.asarray(labels)[bins]})


@pytest.mark.parametrize("labels", [["no", "yes"], ["high", "low", "mid"]])
def test_a_booster_of_codes_exports_and_predicts_the_users_labels(labels: list[str]) -> None:
    # Given an XGBoost classifier fitted on the codes 0..K-1 of sorted text labels
    frame = table(600, labels)
    schema = feature_schema(frame, "label")
    columns = build_pipeline(schema, "classification", DatasetConfig.from_dict({"target": "label"}))[:-1]
    features = frame[["x", "colour"]]
    encoded = columns.fit_transform(features)
    codes = np.searchsorted(labels, frame["label"])
    booster = XGBClassifier(n_estimators=20, max_depth=3).fit(encoded, codes)

    # When it is wrapped with the labels behind the column transformer
    pipeline = Pipeline([*columns.steps, ("model", LabelledClassifier.of_fitted(booster, labels))])

    # Then scikit-learn answers labels, the ONNX graph records them and agrees on every row
    assert list(pipeline.classes_) == labels
    assert set(pipeline.predict(features)) <= set(labels)
    assert (pipeline.predict(features) == frame["label"]).mean() > 0.8
    model = onnx_export.export(pipeline, schema, "classification")
    props = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
    assert json.loads(props[META_CLASSES]) == labels
    check = compare(model, onnx_export.reference(pipeline, frame, schema, "classification"), schema)
    assert check.class_mismatches == 0 and check.divergent_rows == 0


def test_fit_refuses_a_label_outside_its_labels_and_unwrap_leaves_other_estimators_alone() -> None:
    wrapped = LabelledClassifier(XGBClassifier(n_estimators=2), ["a", "b"])
    with pytest.raises(ValueError, match="not in labels"):
        wrapped.fit(np.zeros((4, 1)), np.array(["a", "b", "c", "a"]))
    assert list(wrapped.fit(np.arange(4.0).reshape(-1, 1), np.array(["a", "b", "b", "a"])).classes_) == ["a", "b"]
    plain = XGBClassifier()
    assert unwrap(plain) == (plain, None)
