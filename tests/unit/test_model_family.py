"""The auto recipe's second model family on small tables: a linear model (or its blend with the
trees) when the validation split prefers it, served by the same two-block ONNX graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime
import pandas as pd
import pytest

from stepml import auto_selection, model_family
from stepml.config import DatasetConfig
from stepml.describe import describe_auto_choice
from stepml.evaluation import metric_value
from stepml.onnx_export import export, reference, verify
from stepml.onnx_model import feeds
from stepml.preprocessing import feature_schema, split, to_model_frame
from stepml.training import fit, fit_recorded


def _smooth(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Next year's rate from this year's and two more numbers, plus a region's offset: a line."""
    rng = np.random.default_rng(seed)
    now, a, b = rng.uniform(1, 7, rows), rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    region = rng.choice(["north", "south", "east"], rows)
    offset = pd.Series(region).map({"north": 0.3, "south": -0.2, "east": 0.0}).to_numpy()
    later = 0.95 * now + 0.2 * a - 0.1 * b + offset + rng.normal(0, 0.02, rows)
    a[rng.random(rows) < 0.05] = np.nan  # imputed inside the graph, in both families
    return pd.DataFrame({"now": now, "a": a, "b": b, "region": region, "later": later})


def _checkerboard(rows: int = 600, seed: int = 1) -> pd.DataFrame:
    """A class that is the XOR of two thresholds: trees draw it, no line can."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 1, rows), rng.uniform(0, 1, rows)
    label = np.where((x > 0.5) ^ (y > 0.5), "in", "out")
    return pd.DataFrame({"x": x, "y": y, "noise": rng.normal(0, 1, rows), "label": label})


def _prepared(frame: pd.DataFrame, target: str, task: str) -> tuple[DatasetConfig, pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    config = DatasetConfig.from_dict({"target": target})
    train, test = split(frame, target, task, config)
    return config, train, test, feature_schema(train, target)


def _onnx_outputs(model: bytes, test: pd.DataFrame, schema: list[dict[str, Any]], pipeline: Any, task: str) -> np.ndarray:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    inputs = feeds(reference(pipeline, test, schema, task)["columns"], schema)
    return np.asarray(session.run(None, inputs)[0], dtype=np.float64)


def test_a_smooth_relation_gets_the_linear_model_and_the_graph_serves_it() -> None:
    # Given 300 rows where the target is a straight line in its features (and a region's offset)
    config, train, test, schema = _prepared(_smooth(), "later", "regression")
    # When the auto recipe fits it
    fitted = fit_recorded(train, "later", schema, "regression", config)
    # Then the validation split chose the linear family, and said why
    choice = fitted.auto_choice
    assert choice is not None and choice["family"] == model_family.LINEAR
    assert choice["families"][model_family.LINEAR] < choice["families"][model_family.TREES]
    assert type(fitted.pipeline.named_steps["model"]).__name__ == "RidgeCV"
    # And it predicts the held-out rows far better than the trees alone would
    trees = fit(train, "later", schema, "regression", config)
    y_test = test["later"].to_numpy()
    linear_rmse = metric_value("regression", "rmse", y_test, fitted.pipeline.predict(to_model_frame(test, schema)))
    trees_rmse = metric_value("regression", "rmse", y_test, trees.predict(to_model_frame(test, schema)))
    assert linear_rmse < trees_rmse / 3
    # And the ONNX graph answers what scikit-learn answers, rows with a missing value included
    model = export(fitted.pipeline, schema, "regression")
    result = verify(model, fitted.pipeline, test, schema, "regression")
    assert result.divergent_rows == 0 and result.rows_with_missing > 0
    served = _onnx_outputs(model, test, schema, fitted.pipeline, "regression").ravel()
    np.testing.assert_allclose(served, fitted.pipeline.predict(to_model_frame(test, schema)), rtol=1e-9, atol=1e-9)


def test_a_checkerboard_keeps_the_trees() -> None:
    # Given classes that are the XOR of two thresholds
    config, train, _, schema = _prepared(_checkerboard(), "label", "classification")
    # When auto chooses on its validation split
    choice = auto_selection.choose(train, "label", schema, "classification", config)
    # Then the trees win, by far, and the final model is the booster alone
    assert choice.family == model_family.TREES
    assert choice.families[model_family.TREES] > choice.families[model_family.LINEAR] + 0.2
    pipeline = fit_recorded(train, "label", schema, "classification", config).pipeline
    assert type(pipeline.named_steps["model"]).__name__ == "BoostedTreesClassifier"


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_blend_is_one_pipeline_that_onnx_serves_exactly(task: str) -> None:
    # Given a table with text, numbers and missing values
    frame = _smooth(240)
    if task == "classification":
        frame["later"] = np.where(frame["later"] > frame["later"].median(), "high", "low")
    config, train, test, schema = _prepared(frame, "later", task)
    # When the blend of trees and linear model is fitted
    pipeline = fit(train, "later", schema, task, config, params={"max_iter": 60}, family=model_family.BLEND)
    members = dict(pipeline.named_steps["model"].named_estimators_)
    assert set(members) == {"trees", "linear"}
    # Then it predicts the average of its two members
    features = pipeline.named_steps["columns"].transform(to_model_frame(test, schema))
    if task == "classification":
        average = np.mean([m.predict_proba(features) for m in members.values()], axis=0)
        np.testing.assert_allclose(pipeline.predict_proba(to_model_frame(test, schema)), average)
    else:
        average = np.mean([m.predict(features) for m in members.values()], axis=0)
        np.testing.assert_allclose(pipeline.predict(to_model_frame(test, schema)), average)
    # And the ONNX graph (trees in float64, the linear model in float64) agrees on every row
    result = verify(export(pipeline, schema, task), pipeline, test, schema, task)
    assert result.divergent_rows == 0 and result.rows_with_missing > 0
    assert result.max_abs_difference < 1e-6


def test_large_tables_keep_the_trees_without_comparing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a table above the family comparison's size limit
    monkeypatch.setattr(model_family, "MAX_TRAINING_ROWS", 100)
    config, train, _, schema = _prepared(_smooth(), "later", "regression")
    # When auto chooses
    choice = auto_selection.choose(train, "later", schema, "regression", config)
    # Then no linear model was fitted: the trees, as before
    assert choice.family == model_family.TREES and choice.families == {}


def test_many_categories_keep_the_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given text whose one-hot encoding would be wider than the limit (3 regions over a limit of 2)
    monkeypatch.setattr(model_family, "MAX_ONE_HOT_COLUMNS", 2)
    config, train, _, schema = _prepared(_smooth(), "later", "regression")
    # Then no dense one-hot matrix is built: the trees, as before
    assert not model_family.suits(train, schema)
    assert auto_selection.choose(train, "later", schema, "regression", config).family == model_family.TREES


def test_fixed_params_keep_the_trees() -> None:
    # Given a config that fixes a booster parameter (the user asked for those trees)
    config, train, _, schema = _prepared(_smooth(), "later", "regression")
    config = DatasetConfig.from_dict({"target": "later", "params": {"max_leaf_nodes": 15}})
    # Then auto does not swap in another family
    choice = auto_selection.choose(train, "later", schema, "regression", config)
    assert choice.family == model_family.TREES and choice.families == {}


def test_models_show_describes_the_choice() -> None:
    # Given a version whose auto recipe chose the linear model
    choice = {"rounds": None, "target_transform": None, "family": "linear", "validation_rows": 48,
              "candidates": {"none": {"rounds": 80, "score": 0.31}},
              "families": {"trees": 0.3198, "linear": 0.0341, "blend": 0.1587}, "linear_params": {"C": 10.0}}
    # Then `stepml models show` says which family and how each scored on the validation rows
    line = describe_auto_choice(choice, "rmse")  # type: ignore[arg-type]
    assert "48 validation rows: model: linear, linear C=10 (" in line
    assert "validation rmse: trees 0.3198, linear 0.0341, blend 0.1587" in line
    assert "rounds" not in line.split("(")[0]  # a linear model has no boosting rounds
    trees = {**choice, "family": "trees", "rounds": 100, "target_transform": "log1p", "families": {}, "linear_params": {}}
    assert describe_auto_choice(trees, "rmse").endswith("model: trees, 100 boosting rounds, target fitted as log1p")  # type: ignore[arg-type]
    # a rate chosen by the round's cost is said; an older version's choice (no key) reads as before
    fast = {**trees, "booster_params": {"learning_rate": 0.1, "max_leaf_nodes": 63}, "target_transform": None}
    assert describe_auto_choice(fast, "rmse").endswith(  # type: ignore[arg-type]
        "model: trees, 100 boosting rounds, learning rate 0.1, max leaf nodes 63")
    # and so are small leaves and the text as the booster's categories
    grouped = {**trees, "booster_params": {"min_samples_leaf": 2, "max_features": 0.7,
                                           "categorical_features": "from_dtype"}, "target_transform": None}
    assert describe_auto_choice(grouped, "rmse").endswith(  # type: ignore[arg-type]
        "100 boosting rounds, min samples leaf 2, max features 0.7, text columns as the booster's categories")
    # and a log target's smearing as its factor
    smeared = {**trees, "booster_params": {"output_offset": 1.496553}}
    assert describe_auto_choice(smeared, "rmse").endswith(  # type: ignore[arg-type]
        "100 boosting rounds, the log target's smearing factor 4.47, target fitted as log1p")
    # a cross-validated choice says so, and that every training row was predicted out of fold
    folded = {**choice, "validation_rows": 240, "folds": 5}
    assert "on 5-fold cross-validation (240 rows, each out of fold): model: linear" in describe_auto_choice(folded, "rmse")  # type: ignore[arg-type]


def _wavy(rows: int = 200, seed: int = 2) -> pd.DataFrame:
    """A level that rises and falls with time (three waves), two unrelated numbers and a text column."""
    rng = np.random.default_rng(seed)
    time = rng.uniform(0, 20, rows)
    frame = pd.DataFrame({"time": time, "noise": rng.normal(0, 1, rows), "other": rng.uniform(0, 1, rows),
                          "site": rng.choice(["a", "b"], rows)})
    frame["level"] = 3 * np.sin(time) + rng.normal(0, 0.1, rows)
    frame.loc[frame.sample(frac=0.05, random_state=0).index, "noise"] = np.nan  # imputed inside the graph
    return frame


def test_a_wave_on_a_few_hundred_rows_gets_the_forest_and_the_graph_serves_it() -> None:
    # Given 200 rows whose target rises and falls with time: no line, and the booster's 20-row
    # leaves draw its waves as coarse steps
    config, train, test, schema = _prepared(_wavy(), "level", "regression")
    # When the auto recipe fits it
    fitted = fit_recorded(train, "level", schema, "regression", config)
    # Then its cross-validation chose the forest, which scored best of the four, without rounds
    choice = fitted.auto_choice
    assert choice is not None and choice["family"] == model_family.FOREST and choice["folds"] == auto_selection.FOLDS
    scores = choice["families"]
    assert set(scores) == set(model_family.FAMILIES) and scores[model_family.FOREST] == min(scores.values())
    assert choice["rounds"] is None and choice["linear_params"] == {}
    model = fitted.pipeline.named_steps["model"]
    assert type(model).__name__ == "ExtraTreesRegressor" and model.n_estimators == model_family.FOREST_TREES
    # And it predicts the held-out rows better than the booster alone
    trees = fit(train, "level", schema, "regression", config)
    features, y_test = to_model_frame(test, schema), test["level"].to_numpy()
    forest_rmse = metric_value("regression", "rmse", y_test, fitted.pipeline.predict(features))
    assert forest_rmse < 0.8 * metric_value("regression", "rmse", y_test, trees.predict(features))
    # And the ONNX graph (the forest compares float32, as scikit-learn's trees do) answers what
    # scikit-learn answers on every row, those with a missing value included
    graph = export(fitted.pipeline, schema, "regression")
    result = verify(graph, fitted.pipeline, test, schema, "regression")
    assert result.divergent_rows == 0 and result.rows_with_missing > 0
    served = _onnx_outputs(graph, test, schema, fitted.pipeline, "regression").ravel()
    np.testing.assert_allclose(served, fitted.pipeline.predict(features), rtol=1e-5, atol=1e-5)
    # And `stepml models show` says what was chosen
    assert f"model: forest, {model_family.FOREST_TREES} extremely randomised trees" in describe_auto_choice(
        choice, "rmse")  # type: ignore[arg-type]


def test_a_forest_past_its_node_budget_keeps_its_first_trees_and_says_how_many(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the wave (fully grown trees on 160 noisy rows: ~300 nodes each, 200 trees ~60k nodes)
    # and a node budget a sixth of that
    monkeypatch.setattr(model_family, "FOREST_MAX_NODES", 10_000)
    config, train, test, schema = _prepared(_wavy(), "level", "regression")
    # When the auto recipe fits it (and chooses the forest, as above)
    fitted = fit_recorded(train, "level", schema, "regression", config)
    model = fitted.pipeline.named_steps["model"]
    kept = len(model.estimators_)
    # Then it keeps the most of the trees it grew that the budget holds: one more would pass it
    columns = fitted.pipeline.named_steps["columns"]
    grown = model_family.forest_estimator(config, "regression").fit(
        columns.transform(to_model_frame(train, schema)), train["level"].to_numpy())
    nodes = np.cumsum([tree.tree_.node_count for tree in grown.estimators_])
    assert 1 < kept < model_family.FOREST_TREES and model.n_estimators == kept
    assert nodes[kept - 1] <= 10_000 < nodes[kept]
    # And it is a forest of those trees: its predictions are their average, in scikit-learn and in
    # the ONNX graph alike
    matrix = fitted.pipeline.named_steps["columns"].transform(to_model_frame(test, schema))
    average = np.mean([tree.predict(matrix) for tree in model.estimators_], axis=0)
    np.testing.assert_allclose(fitted.pipeline.predict(to_model_frame(test, schema)), average, rtol=1e-9)
    graph = export(fitted.pipeline, schema, "regression")
    assert verify(graph, fitted.pipeline, test, schema, "regression").divergent_rows == 0
    # And the version's record and `stepml models show` say how many trees it kept
    choice = fitted.auto_choice
    assert choice is not None and choice["forest_trees"] == kept
    assert f"model: forest, {kept} extremely randomised trees" in describe_auto_choice(choice, "rmse")  # type: ignore[arg-type]


def test_the_largest_noisy_table_offered_the_forest_keeps_at_least_the_trees_it_was_chosen_with() -> None:
    # Given a regression table of pure noise at the forest's row limit (each fully grown tree holds
    # about two nodes per row: 200 of them would be ~1.2M nodes)
    rng = np.random.default_rng(7)
    rows = model_family.FOREST_MAX_ROWS
    frame = pd.DataFrame({f"x{i}": rng.normal(0, 1, rows) for i in range(4)} | {"y": rng.normal(0, 1, rows)})
    config = DatasetConfig.from_dict({"target": "y"})
    # When the forest family is fitted on all of it
    pipeline = fit(frame, "y", feature_schema(frame, "y"), "regression", config, family=model_family.FOREST)
    model = pipeline.named_steps["model"]
    # Then it kept no fewer trees than the forests auto validated it with, and at most the budget's nodes
    assert model_family.FOREST_CHOICE_TREES <= len(model.estimators_) < model_family.FOREST_TREES
    assert sum(tree.tree_.node_count for tree in model.estimators_) <= model_family.FOREST_MAX_NODES


def test_a_forest_classifier_is_one_pipeline_that_onnx_serves_exactly() -> None:
    # Given three classes of the wave, text, numbers and missing values
    frame = _wavy()
    frame["level"] = np.where(frame["level"] > 1, "high", np.where(frame["level"] < -1, "low", "middle"))
    config, train, test, schema = _prepared(frame, "level", "classification")
    # When the forest family is fitted
    pipeline = fit(train, "level", schema, "classification", config, family=model_family.FOREST)
    assert type(pipeline.named_steps["model"]).__name__ == "ExtraTreesClassifier"
    # Then the graph's classes and probabilities are scikit-learn's on every row
    result = verify(export(pipeline, schema, "classification"), pipeline, test, schema, "classification")
    assert result.divergent_rows == 0 and result.rows_with_missing > 0 and result.max_abs_difference < 1e-5


def test_tables_above_the_forests_limit_are_not_offered_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the forest's row limit below the table's 160 training rows
    monkeypatch.setattr(model_family, "FOREST_MAX_ROWS", 100)
    config, train, _, schema = _prepared(_wavy(), "level", "regression")
    # Then the other families are compared, the forest is not
    choice = auto_selection.choose(train, "level", schema, "regression", config)
    assert set(choice.families) == {model_family.TREES, model_family.LINEAR, model_family.BLEND}


def test_the_forest_is_still_offered_when_the_linear_model_cannot_be_fitted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the wave, and a linear model that cannot be fitted on it (linear_outputs says so with None)
    config, train, _, schema = _prepared(_wavy(), "level", "regression")
    monkeypatch.setattr(model_family, "linear_outputs", lambda *args, **kwargs: None)
    # When auto chooses
    choice = auto_selection.choose(train, "level", schema, "regression", config)
    # Then the forest is compared with the trees alone, and wins as it does beside the linear model
    assert set(choice.families) == {model_family.TREES, model_family.FOREST}
    assert choice.family == model_family.FOREST and choice.linear_params == {}
