"""Recipes: what each pipeline holds, how it treats missing values, outliers and params, and that
the fitted pipelines convert to ONNX with the same predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stepml.config import DatasetConfig
from stepml.errors import ConfigError
from stepml.evaluation import evaluate
from stepml.preprocessing import MISSING_CATEGORY, feature_schema, to_model_frame
from stepml.recipes import build_pipeline, remove_outliers
from stepml.training import fit
from stepml.validation import read_csv, validate

SOURCE = "s3://bucket/raw/demo/data.csv"


def table(rows: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    y = np.where(x + (colour == "red") + rng.normal(scale=0.3, size=rows) > 0.5, "yes", "no")
    frame = pd.DataFrame({"x": x, "colour": colour, "z": rng.uniform(0, 10, rows), "y": y})
    frame.loc[::10, "x"] = np.nan
    frame.loc[::13, "colour"] = np.nan
    return frame


def config(**values) -> DatasetConfig:
    return DatasetConfig.from_dict({"params": {"max_iter": 30}, **values} if values.get("recipe", "auto") == "auto" else values)


def test_auto_keeps_rows_with_missing_values_and_predicts_them() -> None:
    frame = table()
    schema = feature_schema(frame, "y")
    pipeline = fit(frame, "y", schema, "classification", config())
    missing = pd.DataFrame({"x": [np.nan], "colour": [np.nan], "z": [np.nan]})
    assert pipeline.predict(to_model_frame(missing, schema))[0] in {"yes", "no"}
    steps = {name for name, _, _ in pipeline.named_steps["columns"].transformers_}
    assert steps == {"categorical", "numeric"}
    assert to_model_frame(missing, schema)["colour"][0] == MISSING_CATEGORY


def test_auto_weights_classes_only_for_metrics_that_reward_the_minority() -> None:
    schema = feature_schema(table(), "y")
    plain = build_pipeline(schema, "classification", config())
    weighted = build_pipeline(schema, "classification", config(primary_metric="balanced_accuracy"))
    assert plain.named_steps["model"].class_weight is None
    assert weighted.named_steps["model"].class_weight == "balanced"


def test_params_reach_the_estimator_and_unknown_ones_are_named() -> None:
    schema = feature_schema(table(), "y")
    pipeline = build_pipeline(schema, "classification", config(recipe="seed-a", params={"n_estimators": 7}))
    assert pipeline.named_steps["model"].n_estimators == 7
    with pytest.raises(ConfigError, match="params has parameter.*max_depthh.*RandomForestClassifier"):
        build_pipeline(schema, "classification", config(recipe="seed-a", params={"max_depthh": 3}))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_an_ensemble_averages_its_members_and_exports_to_onnx(task: str) -> None:
    from stepml.onnx_export import export, verify

    frame = table()
    if task == "regression":
        frame["y"] = frame["z"] * 2 + frame["x"].fillna(0)
    schema = feature_schema(frame, "y")
    members = [{"max_iter": 20, "learning_rate": 0.1}, {"max_iter": 30, "max_leaf_nodes": 7, "max_features": 0.6}]
    pipeline = fit(frame, "y", schema, task, config(), ensemble=members)
    model = pipeline.named_steps["model"]
    assert [m.get_params()["max_iter"] for _, m in model.estimators] == [20, 30]
    features = to_model_frame(frame, schema)
    encoded = pipeline.named_steps["columns"].transform(features)
    if task == "classification":
        assert list(pipeline.classes_) == ["no", "yes"]
        mean = np.mean([m.predict_proba(encoded) for m in model.estimators_], axis=0)
        np.testing.assert_allclose(pipeline.predict_proba(features), mean)
    else:
        mean = np.mean([m.predict(encoded) for m in model.estimators_], axis=0)
        np.testing.assert_allclose(pipeline.predict(features), mean)
    result = verify(export(pipeline, schema, task), pipeline, frame, schema, task)
    assert result.rows == len(frame) and result.class_mismatches == 0


def test_seed_b_removes_outliers_from_training_rows_only() -> None:
    frame = pd.DataFrame({"a": [1.0, 2, 3, 4, 5, 6, 7, 8, 1000], "zeros": [0] * 8 + [5], "y": range(9)})
    schema = feature_schema(frame, "y")
    kept = remove_outliers(frame, "y", schema, "regression")
    assert list(kept["a"]) == [1, 2, 3, 4, 5, 6, 7, 8]  # 1000 is out; the zero-IQR column is skipped
    test = pd.DataFrame({"a": [1000.0], "zeros": [5], "y": [8]})
    pipeline = fit(frame, "y", schema, "regression", DatasetConfig(recipe="seed-b", params={"n_estimators": 5}))
    assert evaluate(pipeline, frame, test, "y", schema, "regression")["test_rows"] == 1


def test_regression_evaluation_keeps_a_small_chart_sample() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=700), "y": rng.normal(size=700)})
    schema = feature_schema(frame, "y")
    pipeline = fit(frame, "y", schema, "regression", config())
    evaluation = evaluate(pipeline, frame, frame, "y", schema, "regression", "mae")
    assert evaluation["primary_metric"] == "mae" and evaluation["higher_is_better"] is False
    assert len(evaluation["predicted_vs_actual"]["actual"]) == 200
    assert set(evaluation["metrics"]) == {"rmse", "mae", "r2"}


def test_the_report_warns_about_constant_id_and_duplicate_columns_and_describes_dates() -> None:
    rows = [f"{i},k{i},same,{i % 3},2024-01-{i % 28 + 1:02d},{'a' if i % 2 else 'b'}" for i in range(60)]
    data = read_csv(("n,key,const,small,day,y\n" + "\n".join(rows + rows[:3]) + "\n").encode(), SOURCE)
    report = validate(data, DatasetConfig(), SOURCE)
    text = " | ".join(report["warnings"])
    assert "'const' is constant" in text
    assert "3 duplicate row(s)" in text and report["duplicate_rows"] == 3
    assert "'day'" not in text and report["dropped_columns"] == {}  # a date is trained on, as its parts
    day = {c["name"]: c for c in report["columns"]}["day"]
    assert day["role"] == "date" and day["kind"] == "date" and day["format"] == "iso8601"
    assert day["parts"] == ["year", "month", "day", "dayofweek", "dayofyear"]
    unique = validate(read_csv(("n,key,const,small,day,y\n" + "\n".join(rows) + "\n").encode(), SOURCE), DatasetConfig(), SOURCE)
    text = " | ".join(unique["warnings"])
    assert "'key' is unique per row" in text and "'n' is unique per row" in text
    assert "'small' is unique per row" not in text and "'day' is unique per row" not in text
    assert unique["dropped_columns"] == {"n": "id", "key": "id"}


@pytest.fixture
def skl2onnx_with_int_missing_flags(monkeypatch: pytest.MonkeyPatch):
    """skl2onnx 1.20 passes a bool for HistGradientBoosting's nodes_missing_value_tracks_true, which
    protobuf 7 rejects ("Expected an int, got a boolean"); the exporter must cast it, as here."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args, nodes_missing_value_tracks_true=0, **kwargs):
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    monkeypatch.setattr(tree_ensemble, "add_node", add_node)
    return skl2onnx


# auto's booster converts through stepml.onnx_export only (its own float64 converter, registered
# there): tests/unit/test_onnx_booster.py
@pytest.mark.parametrize(("recipe", "task"), [("seed-a", "classification")])
def test_fitted_pipelines_convert_to_onnx_with_the_same_predictions(
    recipe: str, task: str, skl2onnx_with_int_missing_flags
) -> None:
    skl2onnx = skl2onnx_with_int_missing_flags
    onnxruntime = pytest.importorskip("onnxruntime")
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    frame = table()
    if task == "regression":
        frame["y"] = frame["z"] * 2 + frame["x"].fillna(0)
    schema = feature_schema(frame.drop(columns=["z"]) if task == "regression" else frame, "y")
    train = frame if recipe == "auto" else frame.dropna()
    cfg = config(recipe=recipe, params={"n_estimators": 5} if recipe == "seed-a" else {"max_iter": 30})
    pipeline = fit(train, "y", schema, task, cfg)
    features = to_model_frame(frame, schema)  # rows with missing values included
    inputs = [(f["name"], FloatTensorType([None, 1]) if f["kind"] == "numeric" else StringTensorType([None, 1])) for f in schema]
    model = skl2onnx.convert_sklearn(pipeline, initial_types=inputs, target_opset=17, options={"zipmap": False} if task == "classification" else None)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    feed = {
        f["name"]: features[[f["name"]]].to_numpy().astype(np.float32 if f["kind"] == "numeric" else str)
        for f in schema
    }
    outputs = session.run(None, feed)
    if task == "classification":
        assert (outputs[0].ravel().astype(str) == pipeline.predict(features).astype(str)).mean() > 0.99
        np.testing.assert_allclose(outputs[1], pipeline.predict_proba(features), atol=1e-4)
    else:
        np.testing.assert_allclose(outputs[0].ravel(), pipeline.predict(features), rtol=1e-3, atol=1e-3)


@pytest.fixture
def six_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The search runs six trials instead of filling its time budget: fast and deterministic."""
    optuna = pytest.importorskip("optuna")
    original = optuna.study.Study.optimize

    def optimize(self, func, **kwargs):
        return original(self, func, n_trials=6, n_jobs=1, catch=kwargs["catch"])

    monkeypatch.setattr(optuna.study.Study, "optimize", optimize)


def test_tuning_reads_each_trials_rounds_off_its_validation_loss(six_trials) -> None:
    from stepml.tuning import MAX_ROUNDS, ROUNDS_SCALE, tune

    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, size=(1500, 2))
    signal = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.sin(x[:, 0]) * 3 + x[:, 1] ** 2})
    noise = signal.assign(y=rng.normal(size=len(signal)))
    tuned = config(params={}, tune={"budget_seconds": 5})

    learnable = tune(signal, "y", feature_schema(signal, "y"), "regression", tuned)
    hopeless = tune(noise, "y", feature_schema(noise, "y"), "regression", tuned)

    # a smooth target keeps improving for hundreds of rounds; pure noise is overfitted at once
    assert all(100 < m["max_iter"] <= MAX_ROUNDS * ROUNDS_SCALE for m in learnable["ensemble"])
    assert all(m["max_iter"] < 30 for m in hopeless["ensemble"])
    assert learnable["trials"] == 6 and len(learnable["ensemble"]) == 3
    assert learnable["ensemble"][0] == learnable["best_params"]
    assert learnable["validation_losses"] == sorted(learnable["validation_losses"])
    assert learnable["validation_scores"][0] < hopeless["validation_scores"][0]  # rmse


def test_a_tuned_classifier_averages_its_best_trials_and_exports(six_trials) -> None:
    from stepml.onnx_export import export, verify
    from stepml.training import fit_with_config

    frame = table(600)
    # a line in x and colour, and a step in z
    noise = np.random.default_rng(11).normal(scale=0.3, size=600)
    score = frame["x"].fillna(0) + (frame["colour"] == "red") + (frame["z"] > 7) + noise
    frame["y"] = np.where(score > 0.8, "yes", "no")
    schema = feature_schema(frame, "y")
    tuned = config(params={}, tune={"budget_seconds": 5})

    pipeline, result = fit_with_config(frame, "y", schema, "classification", tuned)

    # the family phase gives the logistic model (the line) a share of the trees' (the step) vote
    assert result["family"] == "blend" and 0 < result["linear_weight"] < 1
    model = pipeline.named_steps["model"]
    # the boosters, alone or beside the linear model in a blend (a member pipeline each, then)
    boosters = [m.named_steps["model"] if hasattr(m, "named_steps") else m for _, m in model.estimators]
    boosters = [m for m in boosters if type(m).__name__ == "BoostedTreesClassifier"]
    assert [m.get_params()["max_iter"] for m in boosters] == [p["max_iter"] for p in result["ensemble"]]
    assert len(result["ensemble"]) == 3 and result["metric"] == "accuracy"
    assert result["validation_losses"] == sorted(result["validation_losses"])  # ranked by log-loss
    assert all(0.5 < s <= 1 for s in result["validation_scores"])
    assert verify(export(pipeline, schema, "classification"), pipeline, frame, schema, "classification").class_mismatches == 0


def test_tuning_keeps_a_max_iter_the_user_fixed(six_trials) -> None:
    from stepml.tuning import tune

    frame = table()
    result = tune(frame, "y", feature_schema(frame, "y"), "classification", config(tune={"budget_seconds": 5}))

    assert result["trials"] == 6 and all(m["max_iter"] == 30 for m in result["ensemble"])
