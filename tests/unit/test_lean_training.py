"""Train's peak memory: the column transformer's matrix built in row chunks, the model frame's text
held as categories and its numbers shared with the table, the frame freed before the model's fit -
all giving the model a plain ``Pipeline.fit`` gives."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stepml import category_order, training
from stepml.booster import BoostedTreesClassifier
from stepml.config import DatasetConfig
from stepml.preprocessing import MISSING_CATEGORY, feature_schema, numbers_as_floats, to_model_frame
from stepml.recipes import build_pipeline


def _table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[::11] = np.nan
    kind = pd.Categorical(rng.choice(["a", "b", "c", None], rows))
    label = np.where(x + rng.normal(scale=0.8, size=rows) > 0, "yes", "no")
    return pd.DataFrame({"x": x, "z": rng.integers(0, 9, rows), "kind": kind, "y": label})


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunked path on a small table: from 100 rows, 64 rows at a time."""
    monkeypatch.setattr(training, "CHUNKED_ROWS", 100)
    monkeypatch.setattr(training, "CHUNK_ROWS", 64)


@pytest.mark.parametrize(("recipe", "task"), [("auto", "classification"), ("seed-a", "classification"),
                                              ("seed-b", "regression")])
def test_the_chunked_matrix_and_transformer_are_what_fit_transform_gives(
        small_chunks: None, recipe: str, task: str) -> None:
    # Given a table's model frame (missing numbers and text; the categories not all in the first chunk)
    frame = _table(500)
    kind = frame["kind"].astype(object)
    kind[300:] = "late"  # a category first seen after the first chunk
    frame["kind"] = kind.astype("category")
    schema = feature_schema(frame, "y")
    features = to_model_frame(frame, schema)
    config = DatasetConfig.from_dict({"target": "y", "recipe": recipe})
    plain, lean = (build_pipeline(schema, task, config).named_steps["columns"] for _ in range(2))
    # When one transformer is fitted whole and the other in chunks
    expected = plain.fit_transform(features)
    matrix = training.fit_columns(lean, features)
    # Then the matrices are equal, in the float64 rows the booster reads without a copy
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.float64 and matrix.flags["C_CONTIGUOUS"]
    # and both transformers answer new rows alike (unseen text, missing values)
    new = to_model_frame(pd.DataFrame({"x": [np.nan, 1.5], "z": [3, 99], "kind": ["zzz", None], "y": ["no", "no"]}),
                         schema)
    np.testing.assert_array_equal(lean.transform(new), plain.transform(new))


def test_a_layout_the_first_chunk_cannot_show_falls_back_to_fit_transform(small_chunks: None) -> None:
    # Given a numeric column missing in every row of the first chunk (its imputer would drop it there)
    frame = _table(300)
    frame["x"] = frame["x"].astype(float)
    frame.loc[:63, "x"] = np.nan
    schema = feature_schema(frame, "y")
    features = to_model_frame(frame, schema)
    config = DatasetConfig.from_dict({"target": "y"})
    plain, lean = (build_pipeline(schema, "classification", config).named_steps["columns"] for _ in range(2))
    # When the matrix is built: it has the column, as fit_transform's has
    matrix = training.fit_columns(lean, features)
    expected = plain.fit_transform(features)
    assert matrix.shape == expected.shape == (300, 3)
    np.testing.assert_array_equal(matrix, expected)


def test_the_fitted_pipeline_predicts_as_a_plain_pipeline_fit_and_the_frame_is_freed_first(
        small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a table, and a plain Pipeline.fit of the same recipe on it
    frame = _table(400)
    schema = feature_schema(frame, "y")
    config = DatasetConfig.from_dict({"target": "y", "params": {"max_iter": 20}})
    reference = build_pipeline(schema, "classification", config)
    # (its categories in the target's order, as the auto recipe's fit gives them)
    category_order.apply(reference.named_steps["columns"], to_model_frame(frame, schema), frame["y"], "classification")
    reference.fit(to_model_frame(frame, schema), frame["y"])
    # When Train fits it (the model frame watched: is it alive when the booster is fitted?)
    seen: dict[str, Any] = {}
    fit_columns, booster_fit = training.fit_columns, BoostedTreesClassifier.fit

    def watched_columns(columns: Any, features: pd.DataFrame, y: Any = None) -> np.ndarray:
        seen["frame"] = weakref.ref(features)
        return fit_columns(columns, features, y)

    def watched_fit(self: Any, X: Any, y: Any, **kwargs: Any) -> Any:
        seen["alive at the fit"] = seen["frame"]() is not None
        return booster_fit(self, X, y, **kwargs)

    monkeypatch.setattr(training, "fit_columns", watched_columns)
    monkeypatch.setattr(BoostedTreesClassifier, "fit", watched_fit)
    pipeline = training.fit(frame, "y", schema, "classification", config)
    # Then the model frame was gone before the booster's fit, and the model is the same
    assert seen["alive at the fit"] is False
    test = to_model_frame(_table(100, seed=1), schema)
    np.testing.assert_array_equal(pipeline.predict_proba(test), reference.predict_proba(test))


def test_numbers_held_as_floats_are_shared_with_the_model_frame() -> None:
    # Given a table with whole numbers, and its floats as the model reads them
    frame = _table(50)
    schema = feature_schema(frame, "y")
    expected = to_model_frame(frame, schema)
    # When Train holds the numeric features as floats
    numbers_as_floats(frame, schema)
    features = to_model_frame(frame, schema)
    # Then the model frame is the same, and shares those columns rather than copying them
    pd.testing.assert_frame_equal(features, expected)
    assert frame["z"].dtype == np.float64
    assert np.shares_memory(features["z"].to_numpy(), frame["z"].to_numpy())


def test_text_categories_reach_the_model_as_their_text_and_missing_as_the_marker() -> None:
    frame = pd.DataFrame({"a": pd.Categorical(["x", None, "y"]), "n": pd.Categorical([1.0, 2.0, None]),
                          "clash": pd.Categorical([1, "1", None]), "marker": pd.Categorical([MISSING_CATEGORY, "q", None]),
                          "y": [0, 1, 0]})
    schema = [{"name": name, "kind": "categorical"} for name in ("a", "n", "clash", "marker")]
    features = to_model_frame(frame, schema)
    assert features.astype(object).values.tolist() == [["x", "1.0", "1", ""], ["", "2.0", "1", "q"], ["y", "", "", ""]]
    # a code per cell where the text is unambiguous; objects where two categories read alike
    assert isinstance(features["a"].dtype, pd.CategoricalDtype) and features["a"].cat.codes.dtype == np.int8
    assert features["clash"].dtype == object and features["marker"].dtype == object


def test_the_median_imputer_fitted_a_column_at_a_time_learns_the_whole_tables_medians(small_chunks: None) -> None:
    # Given numbers with missing values, an even count of present ones, and a column missing everywhere
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.integers(0, 50, 400).astype(float),
                          "gone": np.full(400, np.nan), "y": rng.choice(["p", "q"], 400)})
    frame.loc[::3, "a"] = np.nan
    frame.loc[:150, "b"] = 1e6  # the first chunk's median is not the table's
    schema = feature_schema(frame, "y")
    features = to_model_frame(frame, schema)
    config = DatasetConfig.from_dict({"target": "y"})
    plain, lean = (build_pipeline(schema, "classification", config).named_steps["columns"] for _ in range(2))
    expected = plain.fit_transform(features)
    # When the chunked path fits the imputer column by column
    matrix = training.fit_columns(lean, features)
    # Then it learned exactly the medians of all the rows, and the matrices are equal
    learned = next(t for name, t, _ in lean.transformers_ if name == "numeric").steps[0][1].statistics_
    whole = next(t for name, t, _ in plain.transformers_ if name == "numeric").steps[0][1].statistics_
    np.testing.assert_array_equal(learned, whole)
    assert learned[1] == np.median(frame["b"]) != np.median(frame["b"][:64])
    np.testing.assert_array_equal(matrix, expected)
