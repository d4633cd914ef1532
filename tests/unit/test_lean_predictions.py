"""Evaluate runs the model once on the test split: the labels it derives from the probabilities are
the ones the pipeline's own ``predict`` gives, for every recipe's classifier."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stepml.config import DatasetConfig
from stepml.evaluation import evaluate, predict
from stepml.preprocessing import feature_schema, to_model_frame
from stepml.training import fit


def _table(rows: int, classes: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    kind = rng.choice(["a", "b", "c", None], rows)
    label = np.asarray(classes)[(np.digitize(x + rng.normal(scale=0.8, size=rows), [-0.5, 0.5]) % len(classes))]
    return pd.DataFrame({"x": x, "z": rng.integers(0, 9, rows), "kind": kind, "y": label})


@pytest.mark.parametrize("classes", [["no", "yes"], ["low", "mid", "high"]])
@pytest.mark.parametrize(("recipe", "family"), [("auto", "trees"), ("auto", "linear"), ("auto", "blend"),
                                                ("seed-a", "trees")])
def test_the_labels_derived_from_the_probabilities_are_the_pipelines_predictions(
        recipe: str, family: str, classes: list[str]) -> None:
    # Given a classifier of each recipe and model family, fitted on a small table
    frame = _table(240, classes)
    if recipe == "seed-a":
        frame = frame.dropna()
    train, test = frame.iloc[:180].reset_index(drop=True), frame.iloc[180:].reset_index(drop=True)
    schema = feature_schema(train, "y")
    config = DatasetConfig.from_dict({"target": "y", "recipe": recipe, "params": {"max_iter": 30}}
                                     if recipe == "auto" else {"target": "y", "recipe": recipe})
    pipeline = fit(train, "y", schema, "classification", config, family=family)
    features = to_model_frame(test, schema)
    # When Evaluate predicts the test split once
    outputs = predict(pipeline, features, "classification")
    # Then the labels are the pipeline's predict(), the probabilities its predict_proba()
    assert outputs.predicted.tolist() == pipeline.predict(features).tolist()
    np.testing.assert_array_equal(outputs.probabilities, pipeline.predict_proba(features))
    # and the metrics from them are those evaluate() computes by itself
    once = evaluate(pipeline, train, test, "y", schema, "classification", predictions=outputs)
    assert json.dumps(once, sort_keys=True) == json.dumps(
        evaluate(pipeline, train, test, "y", schema, "classification"), sort_keys=True)


def test_a_regression_is_predicted_once_with_no_probabilities() -> None:
    frame = _table(200, ["a", "b"]).drop(columns="y").assign(y=lambda t: t["x"] * 3 + t["z"])
    schema = feature_schema(frame, "y")
    pipeline = fit(frame, "y", schema, "regression",
                   DatasetConfig.from_dict({"target": "y", "params": {"max_iter": 30}}))
    features = to_model_frame(frame, schema)
    outputs = predict(pipeline, features, "regression")
    assert outputs.probabilities is None
    np.testing.assert_array_equal(outputs.predicted, pipeline.predict(features))


def test_the_confusion_matrix_counts_what_scikit_learns_counts() -> None:
    from sklearn.metrics import confusion_matrix

    from stepml.evaluation import _confusion_matrix

    rng = np.random.default_rng(4)
    for labels in (["no", "yes"], ["b", "a", "c"]):
        # a label outside the model's classes on either side is not counted, as scikit-learn does
        truth = pd.Series(rng.choice([*labels, "other"], 300)).astype(str)
        predicted = pd.Series(rng.choice(labels, 300)).astype(str)
        assert _confusion_matrix(truth, predicted, labels) == confusion_matrix(truth, predicted, labels=labels).tolist()


@pytest.mark.parametrize("classes", [["<=50K", ">50K"], [2, 10, 3], ["b", "a", "c", "d"]])
def test_the_metrics_counted_on_label_codes_are_scikit_learns_on_the_labels_text(classes: list) -> None:
    import sklearn.metrics as skm

    from stepml.evaluation import metric_value

    # Given true and predicted labels (a class never predicted) and probabilities
    rng = np.random.default_rng(3)
    ordered = np.unique(np.asarray(classes))
    y_true = rng.choice(ordered, 300)
    predicted = rng.choice(ordered[:-1], 300)
    probabilities = rng.dirichlet(np.ones(len(ordered)), 300)
    text, guessed = y_true.astype(str), predicted.astype(str)
    labels = [str(c) for c in ordered]
    # When Evaluate scores them, Then each metric is the one scikit-learn gives on their text
    assert metric_value("classification", "accuracy", y_true, predicted, probabilities, ordered) == \
        skm.accuracy_score(text, guessed)
    assert metric_value("classification", "balanced_accuracy", y_true, predicted, probabilities, ordered) == \
        skm.balanced_accuracy_score(text, guessed)
    f1 = (skm.f1_score(text, guessed, pos_label=labels[1], zero_division=0) if len(labels) == 2
          else skm.f1_score(text, guessed, average="macro", zero_division=0))
    assert metric_value("classification", "f1", y_true, predicted, probabilities, ordered) == f1
    if len(labels) == 2:
        assert metric_value("classification", "roc_auc", y_true, predicted, probabilities, ordered) == \
            skm.roc_auc_score(text == labels[1], probabilities[:, 1])


def test_a_test_split_over_the_scored_rows_is_scored_on_its_seeded_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    from stepml import stages

    # Given a classifier and a test split larger than Evaluate scores
    frame = _table(600, ["no", "yes"], seed=3)
    train, test = frame.iloc[:300].reset_index(drop=True), frame.iloc[300:].reset_index(drop=True)
    schema = feature_schema(train, "y")
    config = DatasetConfig.from_dict({"target": "y", "params": {"max_iter": 30}, "split": {"seed": 7}})
    pipeline = fit(train, "y", schema, "classification", config)
    monkeypatch.setattr(stages, "SCORED_ROWS", 120)
    # When Evaluate assesses it
    evaluation = stages.assess(pipeline, train, test, schema, "classification", "y", config)["evaluation"]
    # Then it says how many rows it scored of how many, and its metrics are those of that sample
    assert (evaluation["test_rows"], evaluation["scored_rows"]) == (300, 120)
    sample = test.sample(n=120, random_state=7).sort_index()
    assert evaluation["metrics"] == evaluate(pipeline, train, sample, "y", schema, "classification")["metrics"]
    assert sum(map(sum, evaluation["confusion_matrix"])) == 120
    # and a split within the bound is scored whole, with no scored_rows
    monkeypatch.setattr(stages, "SCORED_ROWS", 300)
    whole = stages.assess(pipeline, train, test, schema, "classification", "y", config)["evaluation"]
    assert whole["test_rows"] == 300 and "scored_rows" not in whole
