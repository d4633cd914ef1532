"""The auto recipe's LightGBM boosters (:mod:`stepml.booster`) export to ONNX exactly.

LightGBM compares float64 features with float64 thresholds and sums float64 leaf values; the graph
does the same (:func:`stepml.onnx_export._booster_trees`), so onnxruntime answers what the pipeline
answers to rounding (~1e-15 measured), on every row, for features a float32 graph cannot tell
apart: Unix timestamps one second apart (float32 holds them to 128 s) and numbers that differ
beyond float32's 24 bits. Each pipeline is fitted through the project's own path
(:func:`stepml.training.fit`, recipe ``auto``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest

from stepml import model_family
from stepml.booster import BoostedTreesClassifier, BoostedTreesRegressor
from stepml.columns import MISSING_MARKERS
from stepml.config import DatasetConfig
from stepml.onnx_export import compares_in_float64, export, reference
from stepml.onnx_model import PREDICTION, PROBABILITIES, feeds, model_classes
from stepml.onnx_verify import compare
from stepml.preprocessing import feature_schema, split, to_model_frame
from stepml.training import fit

#: Largest relative (and, near zero, absolute) difference between ONNX and the pipeline.
RTOL, ATOL = 1e-9, 1e-12
#: 1 + k * STEP for k < 64 are 64 distinct float64 values that float32 rounds to 1.0.
STEP = 2.0**-40


def _precise(task: str, classes: int = 2, rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A target decided by Unix seconds (one apart, around 1.7e9) and by a number known only
    beyond float32 precision, plus noise, a text column and missing values."""
    rng = np.random.default_rng(seed)
    seconds = 1_700_000_000 + rng.permutation(rows).astype(float)
    fine = 1.0 + rng.integers(0, 64, rows) * STEP
    noise = rng.normal(0, 1, rows)
    kind = rng.choice(["a", "b", "c"], rows)
    signal = (seconds % 7) + (fine > 1.0 + 31.5 * STEP) * 3 + (kind == "b") * 2
    if task == "classification":
        target: Any = np.array([f"class {int(k)}" for k in signal % classes])
    else:
        target = signal * 10 + noise + 5
    noise[rng.random(rows) < 0.05] = np.nan  # imputed inside the graph
    return pd.DataFrame({"seconds": seconds, "fine": fine, "noise": noise, "kind": kind, "target": target})


def _fitted(frame: pd.DataFrame, target: str, task: str, **how: Any) -> tuple[Any, pd.DataFrame, list[dict[str, Any]]]:
    config = DatasetConfig.from_dict({"target": target})  # recipe auto
    train, test = split(frame, target, task, config)
    schema = feature_schema(train, target)
    return fit(train, target, schema, task, config, **how), test, schema


def _served(model: bytes, pipeline: Any, test: pd.DataFrame, schema: list[dict[str, Any]], task: str) -> np.ndarray:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    inputs = feeds(reference(pipeline, test, schema, task)["columns"], schema)
    return np.asarray(session.run([PROBABILITIES if task == "classification" else PREDICTION], inputs)[0])


def _expected(pipeline: Any, test: pd.DataFrame, schema: list[dict[str, Any]], task: str) -> np.ndarray:
    features = to_model_frame(test, schema)
    if task == "classification":
        return np.asarray(pipeline.predict_proba(features))
    return np.asarray(pipeline.predict(features)).reshape(-1, 1)


def _assert_exact(pipeline: Any, test: pd.DataFrame, schema: list[dict[str, Any]], task: str) -> np.ndarray:
    """Export, verify with no divergence allowed, and compare onnxruntime's outputs row by row."""
    model = export(pipeline, schema, task)
    check = reference(pipeline, test, schema, task)
    assert check["exact"] is True  # verified with no divergent row allowed
    result = compare(model, check, schema)
    assert result.divergent_rows == 0 and result.class_mismatches == 0
    assert result.rows == len(test) and result.rows_with_missing > 0
    served, expected = _served(model, pipeline, test, schema, task), _expected(pipeline, test, schema, task)
    assert served.dtype == np.float64 and served.shape == expected.shape
    np.testing.assert_allclose(served, expected, rtol=RTOL, atol=ATOL)
    if task == "classification":
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        classes = model_classes(session.get_modelmeta().custom_metadata_map)
        assert classes == [str(c) for c in pipeline.classes_]
        assert [classes[i] for i in served.argmax(axis=1)] == list(pipeline.predict(to_model_frame(test, schema)))
    return served


def _booster(pipeline: Any) -> Any:
    return pipeline.named_steps["model"]


def _float32_divergence(booster: Any, features: np.ndarray, task: str) -> int:
    """Rows on which onnxmltools' float32 conversion of the same LightGBM model answers otherwise."""
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = convert_lightgbm(booster.model_, initial_types=[("features", FloatTensorType([None, features.shape[1]]))],
                             target_opset=15, zipmap=False)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"features": features.astype(np.float32)})
    if task == "classification":
        expected = booster.predict_proba(features)
        return int((np.abs(outputs[1] - expected).max(axis=1) > 1e-4).sum())
    expected = booster.predict(features)
    return int((np.abs(outputs[0].ravel() - expected) > 1e-4 * np.abs(expected).max()).sum())


@pytest.mark.parametrize("classes", [2, 3])
def test_a_booster_classifier_answers_lightgbms_probabilities_on_every_row(classes: int) -> None:
    # Given the auto recipe's booster on seconds and sub-float32 numbers, 2 or 3 classes
    pipeline, test, schema = _fitted(_precise("classification", classes), "target", "classification")
    booster = _booster(pipeline)
    assert isinstance(booster, BoostedTreesClassifier) and compares_in_float64(booster)
    assert booster.model_.booster_.num_trees() == booster.n_iter_ * (1 if classes == 2 else classes)
    # When exported, then onnxruntime gives LightGBM's probabilities and classes on every row
    _assert_exact(pipeline, test, schema, "classification")


def test_a_booster_regressor_answers_lightgbms_values_and_float32_would_not() -> None:
    # Given the auto recipe's booster regressor on seconds and sub-float32 numbers
    pipeline, test, schema = _fitted(_precise("regression"), "target", "regression")
    booster = _booster(pipeline)
    assert isinstance(booster, BoostedTreesRegressor)
    # When exported, then every row's value is LightGBM's
    _assert_exact(pipeline, test, schema, "regression")
    # And the test can tell: a float32 conversion of the very same trees answers otherwise on many rows
    features = pipeline.named_steps["columns"].transform(to_model_frame(test, schema))
    assert _float32_divergence(booster, np.asarray(features, dtype=np.float64), "regression") > len(test) // 4


def test_float32_would_flip_the_classifiers_rows_too() -> None:
    pipeline, test, schema = _fitted(_precise("classification", 3), "target", "classification")
    features = np.asarray(pipeline.named_steps["columns"].transform(to_model_frame(test, schema)), dtype=np.float64)
    assert _float32_divergence(_booster(pipeline), features, "classification") > len(test) // 4
    _assert_exact(pipeline, test, schema, "classification")


def test_a_log_target_booster_answers_on_the_targets_scale() -> None:
    # Given a skewed positive target fitted in log space (the log1p/expm1 wrapper around the booster)
    frame = _precise("regression")
    frame["target"] = np.exp(frame["target"] / 10)
    pipeline, test, schema = _fitted(frame, "target", "regression", target_transform="log1p")
    assert isinstance(_booster(pipeline).regressor_, BoostedTreesRegressor)
    # When exported, then the graph inverts the log in float64 and matches on every row
    _assert_exact(pipeline, test, schema, "regression")


@pytest.mark.parametrize(("loss", "transform"), [("squared_error", "log1p"), ("poisson", None)])
def test_a_boosters_output_offset_is_added_to_its_score_in_the_graph(loss: str, transform: str | None) -> None:
    # Given a booster whose score is shifted by an output_offset (auto's smearing of a log target),
    # in log space under log1p/expm1, or under a log-link loss
    frame = _precise("regression")
    frame["target"] = np.round(np.exp(frame["target"] / 20))
    params = {"loss": loss, "max_iter": 60}
    shifted, test, schema = _fitted(frame, "target", "regression", target_transform=transform,
                                    params={**params, "output_offset": 0.25})
    plain, _, _ = _fitted(frame, "target", "regression", target_transform=transform, params=params)
    # When exported, then the graph answers the shifted booster's values on every row
    served = _assert_exact(shifted, test, schema, "regression")
    # And those are the plain booster's (+1) times exp(0.25): the offset is not lost on the way
    unshifted = _served(export(plain, schema, "regression"), plain, test, schema, "regression")
    one = 1.0 if transform else 0.0
    np.testing.assert_allclose((served + one) / (unshifted + one), np.exp(0.25), rtol=1e-9)


@pytest.mark.parametrize("loss", ["poisson", "gamma"])
def test_a_booster_of_a_log_link_loss_answers_lightgbms_values(loss: str) -> None:
    # Given a config's `loss: poisson` (counts) or `loss: gamma` (positive amounts): LightGBM fits
    # the log of the mean, and predicts exp of its trees' sum
    frame = _precise("regression")
    frame["target"] = np.round(np.exp(frame["target"] / 20)) if loss == "poisson" else np.exp(frame["target"] / 20)
    pipeline, test, schema = _fitted(frame, "target", "regression", params={"loss": loss, "max_iter": 60})
    assert _booster(pipeline).model_.objective_ == loss
    # When exported, then the graph exponentiates in float64 and matches on every row
    served = _assert_exact(pipeline, test, schema, "regression")
    assert served.min() > 0


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_blend_of_the_booster_and_a_linear_model_exports_exactly(task: str) -> None:
    # Given the auto recipe's blend: a soft vote / average of the booster pipeline and a linear one
    pipeline, test, schema = _fitted(_precise(task, 3), "target", task, family=model_family.BLEND,
                                     linear_weight=0.3)
    members = dict(_booster(pipeline).named_estimators_)
    assert isinstance(members["trees"].named_steps["model"], (BoostedTreesClassifier, BoostedTreesRegressor))
    assert compares_in_float64(_booster(pipeline))
    # When exported, then the graph answers the blend's outputs on every row
    _assert_exact(pipeline, test, schema, task)


def test_numbers_missing_at_serving_are_imputed_in_the_graph_as_in_the_pipeline() -> None:
    # Given the auto booster and a test split whose timestamps are missing every third row
    pipeline, test, schema = _fitted(_precise("classification", 2, rows=400), "target", "classification")
    test = test.copy()
    test.loc[test.index[::3], "seconds"] = np.nan
    # When exported, then the graph's median imputation and trees answer the pipeline's on every row
    _assert_exact(pipeline, test, schema, "classification")


def test_a_tree_of_one_leaf_exports() -> None:
    # Given a constant target: LightGBM stops after one tree, a single leaf holding the mean
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (200, 2))
    booster = BoostedTreesRegressor(max_iter=5).fit(x, np.full(200, 3.25))
    assert [tree["num_leaves"] for tree in booster.model_.booster_.dump_model()["tree_info"]] == [1]
    # When exported, then the graph answers that leaf
    np.testing.assert_array_equal(_booster_graph(booster, x[:20]), booster.predict(x[:20]))


def test_nan_reaching_the_trees_takes_lightgbms_side() -> None:
    """No NaN reaches the auto recipe's trees (numbers are imputed); the graph still follows
    LightGBM where one does: a split's default side (trained with NaN), else 0.0's side."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (800, 3))
    y = x[:, 0] * 2 + (x[:, 1] > 0.3) + rng.normal(0, 0.1, 800)
    x[rng.random(800) < 0.2, 0] = np.nan  # column 0 trains with NaN (missing_type NaN), 1 and 2 without
    booster = BoostedTreesRegressor(max_iter=40).fit(x, y)
    test = rng.normal(0, 1, (300, 3))
    test[::2, 0] = np.nan
    test[1::3, 1] = np.nan
    test[2::5, 2] = np.nan
    splits = [(node["split_feature"], node["missing_type"], node["default_left"]) for node in _splits(booster)]
    assert {(0, "NaN", True), (0, "NaN", False), (1, "None", True)} <= set(splits)
    served = _booster_graph(booster, test)
    np.testing.assert_allclose(served, booster.predict(test), rtol=RTOL, atol=ATOL)


def _grouped(task: str, classes: int = 2, rows: int = 2000, seed: int = 5) -> pd.DataFrame:
    """:func:`_precise`'s table plus a text column of 40 groups whose effects have no order."""
    frame = _precise("regression", rows=rows, seed=seed)
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 40, rows)
    signal = frame["target"].to_numpy() + rng.normal(0, 20, 40)[group]
    frame["group"] = [f"g{code:02d}" for code in group]
    frame.loc[rng.random(rows) < 0.03, "group"] = None  # missing text: its own code in the encoder
    if task == "classification":
        frame["target"] = [f"class {int(k)}" for k in np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))]
    else:
        frame["target"] = signal
    return frame


@pytest.mark.parametrize(("task", "classes"), [("classification", 2), ("classification", 3), ("regression", 1)])
def test_text_as_the_boosters_categories_exports_exactly(task: str, classes: int) -> None:
    # Given the booster fitted with the text columns as its categories (`categorical_features: from_dtype`)
    pipeline, test, schema = _fitted(_grouped(task, classes), "target", task,
                                     params={"categorical_features": "from_dtype", "max_iter": 60})
    booster = _booster(pipeline)
    assert booster.categorical_features == [0, 1]  # the codes of `kind` and `group` lead the matrix
    assert {node["decision_type"] for node in _splits(booster)} == {"==", "<="}
    # And test rows holding a group it never saw and missing text
    test = test.copy()
    test.loc[test.index[::4], "group"] = "a group never seen"
    test.loc[test.index[1::7], "kind"] = None
    # When exported, then every row's answer is LightGBM's (set membership in ai.onnx.ml 5)
    _assert_exact(pipeline, test, schema, task)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_blend_whose_booster_splits_categories_exports_exactly(task: str) -> None:
    # Given the blend of a booster splitting text as categories and a linear model (one-hot text)
    pipeline, test, schema = _fitted(_grouped(task, 3), "target", task, family=model_family.BLEND,
                                     linear_weight=0.3, params={"categorical_features": "from_dtype", "max_iter": 60})
    trees = dict(_booster(pipeline).named_estimators_)["trees"].named_steps["model"]
    assert trees.categorical_features == [0, 1] and "==" in {node["decision_type"] for node in _splits(trees)}
    test = test.copy()
    test.loc[test.index[::5], "group"] = "a group never seen"
    # When exported, then the graph answers the blend's outputs on every row
    _assert_exact(pipeline, test, schema, task)


def test_a_category_split_sends_unseen_negative_and_missing_codes_where_lightgbm_does() -> None:
    rng = np.random.default_rng(6)
    codes = rng.integers(0, 30, 1500).astype(float)
    x = np.c_[codes, rng.normal(0, 1, 1500)]
    y = rng.normal(0, 3, 30)[codes.astype(int)] + x[:, 1]
    x[rng.random(1500) < 0.1, 0] = np.nan  # trained with missing codes too
    booster = BoostedTreesRegressor(max_iter=40, categorical_features=[0]).fit(x, y)
    test = np.c_[np.r_[np.arange(-3.0, 40.0), [np.nan] * 5], rng.normal(0, 1, 48)]
    np.testing.assert_allclose(_booster_graph(booster, test), booster.predict(test), rtol=RTOL, atol=ATOL)


def _splits(booster: Any) -> list[dict[str, Any]]:
    found, pending = [], [tree["tree_structure"] for tree in booster.model_.booster_.dump_model()["tree_info"]]
    while pending:
        node = pending.pop()
        if "split_feature" in node:
            found.append(node)
            pending += [node["left_child"], node["right_child"]]
    return found


def _booster_graph(booster: Any, features: np.ndarray) -> np.ndarray:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    from stepml import onnx_export

    onnx_export._register_converters()
    model = convert_sklearn(booster, initial_types=[("x", DoubleTensorType([None, features.shape[1]]))],
                            target_opset=onnx_export.TARGET_OPSET)
    for entry in model.opset_import:
        if entry.domain == "ai.onnx.ml":
            entry.version = onnx_export.BOOSTER_ML_OPSET
    onnx.checker.check_model(model)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": features})[0]).ravel()


def _seed_frame(path: Path, rows: int) -> pd.DataFrame:
    return pd.read_csv(path, na_values=MISSING_MARKERS, keep_default_na=False, nrows=rows)


def test_adult_exports_exactly(adult_csv: Path) -> None:
    # Given 3,000 rows of the adult census table (text, numbers, missing values) and the auto booster
    pipeline, test, schema = _fitted(_seed_frame(adult_csv, 3000), "income", "classification")
    assert isinstance(_booster(pipeline), BoostedTreesClassifier)
    # When exported, then every held-out row's probabilities are LightGBM's
    _assert_exact(pipeline, test, schema, "classification")


def test_california_housing_exports_exactly_in_log_space(california_csv: Path) -> None:
    # Given 3,000 rows of California housing (a skewed price) fitted in log space
    frame = _seed_frame(california_csv, 3000)
    pipeline, test, schema = _fitted(frame, "median_house_value", "regression", target_transform="log1p")
    # When exported, then every held-out row's price is the pipeline's
    _assert_exact(pipeline, test, schema, "regression")


def _text_only(task: str, rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Two text columns of 150 values each and nothing else (the police_deaths shape: a
    department and a date of watch as text), with missing values."""
    rng = np.random.default_rng(seed)
    first, second = rng.integers(0, 150, rows), rng.integers(0, 150, rows)
    signal = (first % 3) + (second % 2) * 2
    target: Any = np.array([f"class {k % 2}" for k in signal]) if task == "classification" else signal * 5.0
    frame = pd.DataFrame({"department": [f"d{i}" for i in first], "watch": [f"w{i}" for i in second],
                          "target": target})
    frame.loc[frame.index[::41], "watch"] = None
    return frame


@pytest.mark.parametrize("family", [model_family.TREES, model_family.LINEAR, model_family.BLEND])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_table_of_text_alone_exports_and_answers_as_scikit_learn(task: str, family: str) -> None:
    # Given features that are all text: the preprocessing's codes end in float32 in the graph
    pipeline, test, schema = _fitted(_text_only(task), "target", task, family=family)
    assert all(f["kind"] == "categorical" for f in schema)
    # When exported, then the graph runs (its float64 models get float64) and answers every row
    model = export(pipeline, schema, task)
    check = reference(pipeline, test, schema, task)
    result = compare(model, check, schema)
    assert result.divergent_rows == 0 and result.class_mismatches == 0 and result.rows == len(test)
