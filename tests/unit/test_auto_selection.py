"""The auto recipe's choices on a validation split: boosting rounds by early stopping, and a log
transform of a skewed non-negative regression target that the ONNX graph inverts."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.base import clone

from stepml import auto_selection, target_transform
from stepml.config import DatasetConfig
from stepml.errors import ModelExportError
from stepml.onnx_export import export, verify
from stepml.preprocessing import class_labels, feature_schema, split, to_model_frame
from stepml.recipes import AUTO_PARAMS
from stepml.training import fit_recorded, fit_with_config
from tests.synthetic import recorded_params, store_sales


def _skewed_prices(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """A price-like target: log-normal, multiplicative in its features (a long right tail)."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0, 1, rows), rng.uniform(0, 1, rows), rng.uniform(0, 1, rows)
    area = rng.choice(["centre", "suburb", "village"], rows)
    level = pd.Series(area).map({"centre": 1.0, "suburb": 0.0, "village": -1.0}).to_numpy()
    price = 1000 * np.exp(3 * (a + b * c) + level + rng.normal(0, 0.2, rows))
    b[rng.random(rows) < 0.05] = np.nan  # missing values are imputed inside the graph
    return pd.DataFrame({"a": a, "b": b, "c": c, "area": area, "price": price})


def _fitted(frame: pd.DataFrame, target: str, task: str, **settings: Any) -> tuple[Any, pd.DataFrame, list[dict[str, Any]]]:
    config = DatasetConfig.from_dict({"target": target, **settings})
    train, test = split(frame, target, task, config)
    schema = feature_schema(train, target)
    pipeline, _ = fit_with_config(train, target, schema, task, config)
    return pipeline, test, schema


@pytest.fixture(scope="module")
def price_model() -> tuple[Any, pd.DataFrame, list[dict[str, Any]]]:
    """The auto recipe fitted on the skewed prices: (pipeline, test split, schema)."""
    return _fitted(_skewed_prices(), "price", "regression")


def test_a_skewed_price_is_fitted_in_log_space_and_served_on_its_own_scale(price_model: Any) -> None:
    # Given a log-normal price with a long right tail
    assert target_transform.suits(_skewed_prices()["price"].to_numpy())
    # When the auto recipe fits it
    pipeline, test, schema = price_model
    # Then the validation split chose the log target: the pipeline's model is log1p/expm1-wrapped
    assert pipeline.steps[-1][1].regressor_.__class__.__name__ == "BoostedTreesRegressor"
    assert pipeline.steps[-1][1].func is np.log1p
    # And the exported graph answers in currency, as scikit-learn does, on every test row
    model = export(pipeline, schema, "regression")
    result = verify(model, pipeline, test, schema, "regression")
    assert result.divergent_rows == 0
    assert result.rows_with_missing > 0
    assert result.max_abs_difference <= result.tolerance
    metadata = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
    assert metadata[target_transform.META_TARGET_TRANSFORM] == "log1p"
    # And the predictions are prices, not logs of prices, closer to the truth than the same
    # booster fitted on the raw prices
    from stepml.preprocessing import to_model_frame
    from stepml.training import fit

    features = to_model_frame(test, schema)
    logged = pipeline.predict(features)
    assert np.median(logged) > 1000
    config = DatasetConfig.from_dict({"target": "price"})
    train, _ = split(_skewed_prices(), "price", "regression", config)
    raw = fit(train, "price", schema, "regression", config, params={"max_iter": pipeline.steps[-1][1].regressor.max_iter})
    assert rmse(test["price"], logged) < 0.9 * rmse(test["price"], raw.predict(features))


def test_smearing_lifts_a_geometric_mean_to_the_mean_without_scoring_a_row_by_its_own_residual() -> None:
    # Given a model that knows a log-normal target's log mean exactly (log-scale noise 0.8)
    rng = np.random.default_rng(0)
    log_mean = rng.uniform(1, 3, 4000)
    y = np.expm1(log_mean + rng.normal(0, 0.8, 4000))
    predictions = np.expm1(log_mean)
    # When smeared, then the factor is the noise's exp(0.8^2 / 2) and the mean is the target's,
    # where the back-transformed predictions alone sit a quarter low
    smeared, offset = target_transform.smeared(predictions, y)
    assert offset == pytest.approx(0.32, abs=0.04)
    assert np.mean(smeared + 1) / np.mean(y + 1) == pytest.approx(1.0, abs=0.05)
    assert np.mean(predictions + 1) / np.mean(y + 1) < 0.8
    # And a row is smeared by the other half's residuals: its own moves the other half only
    moved = y.copy()
    moved[0] *= 1000
    again, _ = target_transform.smeared(predictions, moved)
    assert again[0] == smeared[0] and again[1] > smeared[1]
    # And residuals of hundreds of log units do not overflow
    assert np.isfinite(target_transform.smeared(np.zeros(4), np.array([1e300, 0, 0, 1e300]))[1])


def _noisy_prices(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Prices with a wide log-normal noise (0.8 on the log scale): their mean is 38 % above their
    geometric mean."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 1, rows), rng.uniform(0, 1, rows)
    area = rng.choice(["centre", "suburb", "village"], rows)
    level = pd.Series(area).map({"centre": 1.0, "suburb": 0.0, "village": -1.0}).to_numpy()
    return pd.DataFrame({"a": a, "b": b, "area": area,
                         "price": 1000 * np.exp(2 * a + b + level + rng.normal(0, 0.8, rows))})


@pytest.mark.parametrize("metric", ["rmse", "mae"])
def test_a_log_target_is_smeared_to_its_mean_for_squared_error_only(metric: str) -> None:
    # Given noisy prices that validate better in log space
    config = DatasetConfig.from_dict({"target": "price", "primary_metric": metric})
    train, test = split(_noisy_prices(), "price", "regression", config)
    schema = feature_schema(train, "price")
    # When the auto recipe fits them for RMSE (a mean) or MAE (a median)
    fitted = fit_recorded(train, "price", schema, "regression", config)
    choice = fitted.auto_choice
    assert choice["target_transform"] == "log1p"
    booster = fitted.pipeline.steps[-1][1].regressor_
    if metric == "rmse":
        # Then for RMSE the booster's score is lifted by the smearing's log (~0.8^2 / 2)
        assert choice["booster_params"]["output_offset"] == pytest.approx(0.32, abs=0.1)
        assert booster.output_offset == choice["booster_params"]["output_offset"]
        # And the graph serves the lifted predictions
        model = export(fitted.pipeline, schema, "regression")
        assert verify(model, fitted.pipeline, test, schema, "regression").divergent_rows == 0
    else:
        # Then for MAE the back-transformed median stays as it is
        assert "output_offset" not in choice["booster_params"] and booster.output_offset == 0.0


def rmse(actual: Any, predicted: Any) -> float:
    return float(np.sqrt(np.mean((np.asarray(actual, float) - np.asarray(predicted, float)) ** 2)))


def test_served_predictions_of_a_log_target_model_match_scikit_learn_through_the_serving_feeds(price_model: Any) -> None:
    import onnxruntime as ort

    from stepml.onnx_model import PREDICTION, feeds_from_rows
    from stepml.preprocessing import to_model_frame

    # Given a log-target model and three request rows as serving checks them (a missing b, an unseen area)
    pipeline, _, schema = price_model
    rows = [{"a": 0.9, "b": 0.8, "c": 0.7, "area": "centre"}, {"a": 0.1, "b": None, "c": 0.5, "area": "village"},
            {"a": 0.5, "b": 0.2, "c": 0.05, "area": "nowhere"}]
    session = ort.InferenceSession(export(pipeline, schema, "regression"), providers=["CPUExecutionProvider"])
    # When the graph predicts them as the inference function does
    served = session.run([PREDICTION], feeds_from_rows(rows, schema))[0].reshape(-1)
    # Then it matches scikit-learn's prediction on the original scale
    frame = pd.DataFrame([{**r, "b": np.nan if r["b"] is None else r["b"]} for r in rows])
    expected = pipeline.predict(to_model_frame(frame, schema))
    np.testing.assert_allclose(served, expected, rtol=1e-6)


def test_a_symmetric_target_is_not_transformed() -> None:
    # Given a target that is symmetric (and partly negative): no log is offered
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 600)
    frame = pd.DataFrame({"x": x, "y": 3 * x + rng.normal(0, 1, 600)})
    assert not target_transform.suits(frame["y"].to_numpy())
    # When auto fits it, the model is fitted on y itself (a straight line: the linear family wins)
    pipeline, _, _ = _fitted(frame, "y", "regression")
    assert pipeline.steps[-1][1].__class__.__name__ == "RidgeCV"


def test_early_stopping_boosts_fewer_rounds_on_a_tiny_noisy_table() -> None:
    # Given 200 rows whose target is mostly noise (400 fixed rounds would memorise them)
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    frame["y"] = 0.5 * frame["a"] + rng.normal(0, 2, 200)
    # When auto fits its trees (a fixed booster parameter keeps the trees; the linear family
    # would win this line, see test_model_family)
    pipeline, _, _ = _fitted(frame, "y", "regression", params={"min_samples_leaf": 20})
    # Then the validation curve chose far fewer rounds than the old fixed 400
    rounds = pipeline.steps[-1][1].max_iter
    assert auto_selection.MIN_ROUNDS <= rounds < AUTO_PARAMS["max_iter"] / 2


def test_early_stopping_boosts_more_rounds_where_the_validation_loss_keeps_falling() -> None:
    # Given a smooth, noiseless signal the booster keeps improving on
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.uniform(-3, 3, 1000), "b": rng.uniform(-3, 3, 1000)})
    frame["y"] = np.sin(frame["a"]) * 10 + frame["b"] ** 2
    # (a fixed booster parameter keeps the trees: the forest family would win this noiseless curve)
    config = DatasetConfig.from_dict({"target": "y", "params": {"min_samples_leaf": 20}})
    # When the rounds are chosen on its validation split
    choice = auto_selection.choose(frame, "y", feature_schema(frame, "y"), "regression", config)
    # Then the final fit boosts beyond the old fixed 400 rounds
    assert choice.params["max_iter"] > AUTO_PARAMS["max_iter"]


def test_rounds_the_user_fixed_are_kept() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=300)})
    frame["y"] = frame["a"] + rng.normal(0, 1, 300)
    pipeline, _, _ = _fitted(frame, "y", "regression", params={"max_iter": 77})
    assert pipeline.steps[-1][1].max_iter == 77


def test_a_classification_gets_its_rounds_from_the_validation_split() -> None:
    # Given a small binary table
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.choice(["x", "y"], 300)})
    frame["label"] = np.where(frame["a"] + rng.normal(0, 1, 300) > 0, "yes", "no")
    # (a fixed booster parameter: the trees, whose rounds are chosen, not the linear family)
    config = DatasetConfig.from_dict({"target": "label", "params": {"min_samples_leaf": 20}})
    train, _ = split(frame, "label", "classification", config)
    # When the choice is made
    choice = auto_selection.choose(train, "label", feature_schema(train, "label"), "classification", config)
    # Then rounds come from early stopping, with no target transform, scored out of fold on every
    # training row (240 rows: a small table's choice is cross-validated)
    assert choice.target_transform is None
    assert choice.params["max_iter"] == choice.rounds < AUTO_PARAMS["max_iter"]
    assert (choice.validation_rows, choice.folds) == (240, auto_selection.FOLDS)
    assert set(choice.candidates) == {"none"}
    # and the folds' mean best round is scaled up by how many more rows the final fit sees than a
    # fold's fit (FOLDS / (FOLDS - 1)), not by one held-out fifth's 1.25
    folds_best = choice.candidates["none"]["rounds"]
    scale = auto_selection.FOLDS / (auto_selection.FOLDS - 1)
    assert choice.rounds == max(auto_selection.MIN_ROUNDS, round(folds_best * scale))


def test_another_target_transform_is_an_export_error_not_a_wrong_graph() -> None:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = TransformedTargetRegressor(HistGradientBoostingRegressor(max_iter=5), func=np.sqrt, inverse_func=np.square)
    model.fit(np.arange(20.0).reshape(-1, 1), np.arange(20.0))
    with pytest.raises(ModelExportError, match="log1p and expm1"):
        target_transform.unwrap(model)


def test_a_large_table_chooses_on_a_sample_with_capped_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a table "large" for auto (the thresholds scaled down so the test stays fast) whose
    # validation loss keeps falling, as Adult's does at 336k rows
    monkeypatch.setattr(auto_selection, "LARGE_TABLE_ROWS", 1000)
    monkeypatch.setattr(auto_selection, "LARGE_FITTING_ROWS", 600)
    monkeypatch.setattr(auto_selection, "LARGE_VALIDATION_ROWS", 150)
    monkeypatch.setattr(auto_selection, "MAX_ROUNDS_LARGE", 60)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.uniform(-3, 3, 1500), "b": rng.uniform(-3, 3, 1500)})
    frame["y"] = np.sin(frame["a"]) * 10 + frame["b"] ** 2
    config = DatasetConfig.from_dict({"target": "y", "params": {"min_samples_leaf": 20}})  # the trees
    # When the rounds are chosen
    choice = auto_selection.choose(frame, "y", feature_schema(frame, "y"), "regression", config)
    # Then the validation fit saw the sample only and stopped at the cap, scaled for the final fit
    assert choice.validation_rows == 150
    assert choice.candidates["none"]["rounds"] <= 60
    assert choice.params["max_iter"] <= round(60 * auto_selection.ROUNDS_SCALE)


def _smooth(rows: int, seed: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.uniform(-3, 3, rows), "b": rng.uniform(-3, 3, rows)})
    frame["y"] = np.sin(frame["a"]) * 10 + frame["b"] ** 2 + rng.normal(0, 0.5, rows)
    return frame


def _cost_params(booster_params: dict[str, Any]) -> dict[str, Any]:
    """The booster settings chosen by a round's cost (``max_bins`` is chosen by the rows and values)."""
    return {name: value for name, value in booster_params.items() if name != "max_bins"}


def test_a_table_from_the_cost_threshold_boosts_faster_larger_rounds_in_both_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the cost threshold scaled down so the test stays fast, chosen on one split (a
    # cross-validated choice counts its folds: the next test)
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 800)
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROWS", 100)
    monkeypatch.setattr(auto_selection, "FINE_ROUNDS", 0)  # the coarse rounds are kept (tested below)
    config = DatasetConfig.from_dict({"target": "y", "params": {"min_samples_leaf": 20}})
    small, large = _smooth(799), _smooth(800)
    # When auto chooses on a table just under it and one at it
    below = auto_selection.choose(small, "y", feature_schema(small, "y"), "regression", config)
    at = auto_selection.choose(large, "y", feature_schema(large, "y"), "regression", config)
    # Then only the larger one gets rate 0.2 and 63 leaves (the recipe's 0.05 and 31 otherwise),
    # recorded with the choice, and its rounds are chosen at that rate: fewer than at the recipe's
    assert _cost_params(below.to_dict()["booster_params"]) == {} and "learning_rate" not in below.params
    assert _cost_params(at.to_dict()["booster_params"]) == auto_selection.COSTLY_ROUND_PARAMS == {
        "learning_rate": 0.2, "max_leaf_nodes": 63}
    assert at.params["learning_rate"] == 0.2 and at.params["max_leaf_nodes"] == 63
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 10**9)
    slow = auto_selection.choose(large, "y", feature_schema(large, "y"), "regression", config)
    assert at.rounds is not None and slow.rounds is not None and at.rounds < slow.rounds
    # and the pipeline Train fits (on the 640 training rows of an 80/20 split) boosts with them
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 600)
    pipeline, _, _ = _fitted(large, "y", "regression", params={"min_samples_leaf": 20})
    booster = pipeline.steps[-1][1]
    assert (booster.learning_rate, booster.max_leaf_nodes) == (0.2, 63) != (AUTO_PARAMS["learning_rate"], AUTO_PARAMS["max_leaf_nodes"])


def test_settings_or_rounds_the_user_fixed_are_not_replaced_by_the_cost_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 100)
    frame = _smooth(600)
    schema = feature_schema(frame, "y")
    rate = auto_selection.choose(frame, "y", schema, "regression", DatasetConfig.from_dict(
        {"target": "y", "params": {"learning_rate": 0.03}}))
    assert rate.params["learning_rate"] == 0.03 and _cost_params(rate.booster_params) == {"max_leaf_nodes": 63}
    rounds = auto_selection.choose(frame, "y", schema, "regression", DatasetConfig.from_dict(
        {"target": "y", "params": {"max_iter": 50}}))
    assert "learning_rate" not in rounds.params and _cost_params(rounds.booster_params) == {}


def test_a_table_of_few_values_boosts_with_as_many_bins_and_grows_the_same_trees() -> None:
    # Given 400 rows of small integers (a 0-16 pixel, a 0-5 count, each missing in some rows), a
    # four-colour text column with missing cells, and a class that follows them
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"pixel": rng.integers(0, 17, 400).astype(float), "count": rng.integers(0, 6, 400).astype(float),
                          "colour": rng.choice(["red", "green", "blue", "grey", None], 400)})
    shade = frame["colour"].map({"red": 3, "green": -3}).fillna(0)
    frame["label"] = np.where(frame["pixel"] + 2 * frame["count"] + shade + rng.normal(0, 3, 400) > 13, "yes", "no")
    frame.loc[rng.random(400) < 0.05, "pixel"] = np.nan
    frame.loc[rng.random(400) < 0.05, "count"] = np.nan
    schema = feature_schema(frame, "label")
    # Then the booster needs 17 bins for its columns (and two to spare for a fit's imputed median or
    # the code of missing or unseen text), where a continuous column would need 255
    assert auto_selection.exact_bins(frame, schema) == 19
    wide = frame.assign(measure=rng.normal(0, 1, 400))
    assert auto_selection.exact_bins(wide, feature_schema(wide, "label")) is None
    # When auto chooses and fits the trees (a fixed param: no other family), it boosts with them,
    # and records them with its choice
    trees_only = DatasetConfig.from_dict({"target": "label", "params": {"min_samples_leaf": 20}})
    fitted = fit_recorded(frame, "label", schema, "classification", trees_only)
    pipeline, choice = fitted.pipeline, fitted.auto_choice
    assert choice is not None and choice["booster_params"]["max_bins"] == 19
    assert pipeline.steps[-1][1].max_bins == 19
    # And the trees are those 255 bins grow: the same predictions on every row
    default = clone(pipeline).set_params(model__max_bins=auto_selection.DEFAULT_BINS)
    features = to_model_frame(frame, schema)
    default.fit(features, class_labels(frame["label"]))
    np.testing.assert_array_equal(pipeline.predict_proba(features), default.predict_proba(features))
    # And the ONNX graph serves them as they are
    assert verify(export(pipeline, schema, "classification"), pipeline, frame, schema, "classification").divergent_rows == 0


def test_a_multiclass_round_costs_a_tree_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 300 training rows and a threshold of 900 row-trees per round, chosen on one split
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 900)
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROWS", 100)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    config = DatasetConfig.from_dict({"target": "label", "params": {"min_samples_leaf": 20}})
    costly = {}
    for classes in (2, 3):
        labelled = frame.assign(label=pd.cut(frame["a"] + rng.normal(0, 0.5, 300), classes, labels=False).astype(str))
        choice = auto_selection.choose(labelled, "label", feature_schema(labelled, "label"), "classification", config)
        costly[classes] = bool(_cost_params(choice.booster_params))
    # Then two classes (one tree a round: 300) keep the recipe's settings, three (900) do not
    assert costly == {2: False, 3: True}


def test_a_cross_validated_choice_counts_its_folds_in_a_rounds_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 300 rows of three classes (900 row-trees a round), chosen on three folds, and a
    # threshold of 2,000 row-trees: above one fit's round, under the three folds' rounds
    monkeypatch.setattr(auto_selection, "COSTLY_ROUND_ROW_TREES", 2_000)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame["label"] = pd.cut(frame["a"] + rng.normal(0, 0.5, 300), 3, labels=False).astype(str)
    config = DatasetConfig.from_dict({"target": "label", "params": {"min_samples_leaf": 20}})
    choice = auto_selection.choose(frame, "label", feature_schema(frame, "label"), "classification", config)
    # Then the choice is cross-validated and boosts the faster, larger rounds
    assert choice.folds == auto_selection.FOLDS
    assert {k: choice.booster_params[k] for k in auto_selection.COSTLY_ROUND_PARAMS} == auto_selection.COSTLY_ROUND_PARAMS
    # And on one split (more rows than cross-validation takes) the same rows per round are not costly
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROWS", 100)
    single = auto_selection.choose(frame, "label", feature_schema(frame, "label"), "classification", config)
    assert single.folds == 1 and "learning_rate" not in single.booster_params


def test_a_small_tables_booster_has_a_bin_per_four_rows_at_most() -> None:
    # Given continuous columns (every value distinct) on 200 rows, and on 2,000
    rng = np.random.default_rng(3)
    small = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "y": rng.normal(size=200)})
    large = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000), "y": rng.normal(size=2000)})
    # Then the small one's booster gets 50 bins, the large one the default 255 (None), a tiny one
    # the floor, and a table of few values as many bins as they need
    assert auto_selection.booster_bins(small, feature_schema(small, "y")) == 200 // auto_selection.ROWS_PER_BIN == 50
    assert auto_selection.booster_bins(large, feature_schema(large, "y")) is None
    tiny = small.head(40)
    assert auto_selection.booster_bins(tiny, feature_schema(tiny, "y")) == auto_selection.MIN_BINS
    coded = small.assign(a=rng.integers(0, 5, 200), b=rng.integers(0, 3, 200))
    assert auto_selection.booster_bins(coded, feature_schema(coded, "y")) == 5 + 2
    # And auto's choice and final fit boost with them
    config = DatasetConfig.from_dict({"target": "y"})
    choice = auto_selection.choose(small, "y", feature_schema(small, "y"), "regression", config)
    assert choice.booster_params.get("max_bins") == 50


def _labelled(rows: int, seed: int = 8, rare: int = 0) -> pd.DataFrame:
    """Two numbers and a three-class label that follows them; ``rare``: rows of a fourth class."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame["label"] = np.select([frame["a"] + frame["b"] > 0.7, frame["a"] + frame["b"] < -0.7], ["up", "down"], "flat")
    frame.loc[frame.index[:rare], "label"] = "rare"
    return frame


def test_a_small_tables_folds_hold_out_every_row_once_and_fit_every_class() -> None:
    # Given a small three-class table
    train = _labelled(400)
    config = DatasetConfig.from_dict({"target": "label"})
    # When its folds are drawn
    folds = auto_selection.choice_folds(train, "label", "classification", config, round_trees=3)
    # Then there are FOLDS of them, their validation rows are the training rows, each once, and
    # no fold validates on a row it fits, or fits without a class
    assert len(folds) == auto_selection.FOLDS
    held_out = np.concatenate([validation.index.to_numpy() for _, validation in folds])
    assert sorted(held_out) == sorted(train.index) and len(set(held_out)) == len(train)
    for fitting, validation in folds:
        assert not set(fitting.index) & set(validation.index)
        assert set(fitting["label"]) == {"up", "down", "flat"}
    # and the same seed draws the same folds
    again = auto_selection.choice_folds(train, "label", "classification", config, round_trees=3)
    assert all(a[1].index.equals(b[1].index) for a, b in zip(folds, again, strict=True))


@pytest.mark.parametrize(("why", "rows", "rare", "trees_per_round"), [
    ("too many rows", 400, 0, 3),
    ("rounds too costly", 300, 0, 30),
    ("a class of fewer rows than folds", 300, auto_selection.FOLDS - 1, 4),
])
def test_other_tables_choose_on_one_held_out_fifth(
    monkeypatch: pytest.MonkeyPatch, why: str, rows: int, rare: int, trees_per_round: int
) -> None:
    # Given the thresholds scaled down so the tables stay small: 350 rows, 3,000 row-trees a round
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROWS", 350)
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROW_TREES", 3_000)
    train = _labelled(rows, rare=rare)
    config = DatasetConfig.from_dict({"target": "label"})
    # When its folds are drawn
    folds = auto_selection.choice_folds(train, "label", "classification", config, trees_per_round)
    # Then there is one split, holding out a fifth
    assert len(folds) == 1, why
    assert len(folds[0][1]) == round(rows * 0.2)


def test_a_cross_validated_choice_scores_every_candidate_on_all_its_out_of_fold_rows() -> None:
    # Given a small regression table where a straight line is the truth
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"a": rng.uniform(0, 10, 200), "b": rng.normal(size=200)})
    frame["y"] = 3 * frame["a"] + rng.normal(0, 1, 200)
    config = DatasetConfig.from_dict({"target": "y"})
    # When auto chooses
    choice = auto_selection.choose(frame, "y", feature_schema(frame, "y"), "regression", config)
    # Then it was cross-validated over all 200 rows, the line validated best and was chosen, and
    # each family's score is that of predictions for all 200 rows (an RMSE near the noise's 1.0
    # for the line, one fold's lucky rows could not make it)
    assert (choice.folds, choice.validation_rows) == (auto_selection.FOLDS, 200)
    assert choice.family == "linear" and choice.rounds is None
    assert 0.8 < choice.families["linear"] < 1.2 < choice.families["trees"]
    assert choice.to_dict()["folds"] == auto_selection.FOLDS


def _airports() -> pd.DataFrame:
    """vega_datasets' airports: a state from the coordinates (50+ classes, some of 3 rows)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("vega_datasets")  # its data file, without importing the package
    assert spec is not None and spec.origin is not None
    airports = pd.read_csv(Path(spec.origin).parent / "_data" / "airports.csv").dropna(subset=["state"])
    counts = airports["state"].value_counts()
    return airports.loc[airports["state"].isin(counts[counts >= 3].index), ["latitude", "longitude", "state"]]


def test_a_diverging_validation_curve_is_not_boosted_on_to_the_fewest_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    from stepml import booster

    # Given many weighted classes at the costly rounds' high rate, without the booster's leaf cap:
    # Newton steps of hundreds make the validation loss lowest at round 1, then run away
    monkeypatch.setattr(booster, "MAX_LEAF_LOGITS", 0.0)  # LightGBM: 0 is no cap
    monkeypatch.setattr(auto_selection, "FINE_ROUNDS", 0)  # nor the finer rounds (they would not diverge)
    frame = _airports()
    config = DatasetConfig.from_dict({"target": "state", "primary_metric": "balanced_accuracy",
                                      "params": {"min_samples_leaf": 20}})
    train, _ = split(frame, "state", "classification", config)
    # When the choice is made
    choice = auto_selection.choose(train, "state", feature_schema(train, "state"), "classification", config)
    # Then the best round is kept as it is: MIN_ROUNDS would boost on into the divergence
    assert choice.booster_params.get("learning_rate") == auto_selection.COSTLY_ROUND_PARAMS["learning_rate"]
    assert choice.candidates["none"]["rounds"] <= 2
    assert choice.rounds is not None and choice.rounds < auto_selection.MIN_ROUNDS


def test_a_flat_validation_curve_still_boosts_the_fewest_rounds() -> None:
    # Given labels with no relation to the features: the validation loss is flat from round 1-2 on
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400),
                          "label": rng.choice(["p", "q", "r"], 400)})
    config = DatasetConfig.from_dict({"target": "label", "params": {"min_samples_leaf": 20}})
    train, _ = split(frame, "label", "classification", config)
    choice = auto_selection.choose(train, "label", feature_schema(train, "label"), "classification", config)
    # Then the few rounds that left the class prior are raised to MIN_ROUNDS (fair_pt's case)
    assert choice.candidates["none"]["rounds"] * auto_selection.rounds_scale(choice.folds) < auto_selection.MIN_ROUNDS
    assert choice.rounds == auto_selection.MIN_ROUNDS


def test_fine_rounds_are_tried_where_the_coarse_ones_converged_fast_and_cheaply() -> None:
    fitting = round(43_152 * (1 - auto_selection.VALIDATION_SIZE))
    # diamonds' price: 38 coarse rounds of one tree on 34.5k rows
    assert auto_selection.fine_rounds_cheap(fitting, 1, 38)
    # coarse rounds that ran long (nyc_weather: 140 of three trees), or a finer fit that would cost
    # as much as airports' (56 classes, 10 coarse rounds on 2,152 rows) are kept
    assert not auto_selection.fine_rounds_cheap(16_714, 3, 140)
    assert not auto_selection.fine_rounds_cheap(2_152, 56, 10)
    assert not auto_selection.fine_rounds_cheap(1_000, 1, auto_selection.FINE_ROUNDS)


def test_a_smooth_target_on_costly_rounds_gets_the_recipes_finer_rounds() -> None:
    # Given 50,000 rows of a smooth, noisy target (a round over them is costly: rate 0.2, 63 leaves
    # first, which stop within a few dozen rounds)
    rng = np.random.default_rng(11)
    rows = 50_000
    frame = pd.DataFrame({"a": rng.uniform(0, 3, rows), "b": rng.uniform(0, 3, rows), "c": rng.normal(size=rows)})
    frame["y"] = 10 * np.sin(frame["a"]) * frame["b"] + frame["b"] ** 2 + 2.0 * rng.normal(size=rows)
    config = DatasetConfig.from_dict({"target": "y"})
    train, _ = split(frame, "y", "regression", config)
    choice = auto_selection.choose(train, "y", feature_schema(train, "y"), "regression", config)
    # Then the coarse rounds converged within FINE_ROUNDS, the recipe's rate was tried on the same
    # split, validated better, and the final fit uses it (no costly settings), with its rounds
    coarse, fine = choice.candidates["none"], choice.candidates["none at the recipe's rate"]
    assert coarse["rounds"] < auto_selection.FINE_ROUNDS < fine["rounds"]
    assert fine["score"] < coarse["score"]
    assert "learning_rate" not in choice.booster_params and "learning_rate" not in choice.params
    assert choice.rounds == round(fine["rounds"] * auto_selection.ROUNDS_SCALE)


def _panel(people: int = 200, visits: int = 10, seed: int = 11) -> pd.DataFrame:
    """A panel whose people are not named: each one's level is known only through the few rows
    sharing their (age, height, weight), as Ecdat's Wages holds 595 people x 7 years."""
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(people), visits)
    traits = rng.normal(size=(people, 3))
    frame = pd.DataFrame({"age": traits[person, 0] + rng.integers(0, visits, len(person)) * 0.01,
                          "height": traits[person, 1], "weight": traits[person, 2]})
    frame["y"] = rng.normal(0, 3, people)[person] + frame["age"] + rng.normal(0, 0.3, len(person))
    return frame


def test_small_leaves_are_kept_where_they_validate_clearly_better_and_train_the_final_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a panel of 200 people x 10 rows, each person's level known only through rows sharing
    # their traits (20-row leaves cannot single out a person of 8 training rows), chosen on one split
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROWS", 100)
    frame = _panel()
    config = DatasetConfig.from_dict({"target": "y"})
    # When auto chooses
    choice = auto_selection.choose(frame, "y", feature_schema(frame, "y"), "regression", config)
    # Then the leaves of a few rows, split among 70 % of the columns, validated clearly better
    # (by more than SMALL_LEAF_MARGIN) and are what the final fit uses
    small, default = choice.candidates["none with small leaves"]["score"], choice.candidates["none"]["score"]
    assert small < (1 - auto_selection.SMALL_LEAF_MARGIN) * default
    assert auto_selection.SMALL_LEAF_PARAMS == {"min_samples_leaf": 2, "max_features": 0.7}
    assert {k: choice.booster_params[k] for k in auto_selection.SMALL_LEAF_PARAMS} == auto_selection.SMALL_LEAF_PARAMS
    assert choice.params["min_samples_leaf"] == 2 and choice.params["max_features"] == 0.7
    pipeline, _, _ = _fitted(frame, "y", "regression")
    booster = pipeline.steps[-1][1]
    assert (booster.min_samples_leaf, booster.max_features) == (2, 0.7)


def test_small_leaves_are_not_tried_where_the_user_fixed_a_leaf_or_the_fit_would_be_costly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROWS", 100)
    frame = _panel()
    schema = feature_schema(frame, "y")
    # Given the user's own leaf size
    fixed = DatasetConfig.from_dict({"target": "y", "params": {"min_samples_leaf": 20}})
    choice = auto_selection.choose(frame, "y", schema, "regression", fixed)
    assert "none with small leaves" not in choice.candidates and choice.params["min_samples_leaf"] == 20
    assert "max_features" not in choice.params
    # Given a second fit that would boost more row-rounds than FINE_ROW_TREE_ROUNDS
    monkeypatch.setattr(auto_selection, "FINE_ROW_TREE_ROUNDS", 1_000)
    choice = auto_selection.choose(frame, "y", schema, "regression", DatasetConfig.from_dict({"target": "y"}))
    assert list(choice.candidates) == ["none"] and "min_samples_leaf" not in choice.params


def test_small_leaves_that_validate_no_better_leave_the_recipes_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a smooth relation drawn in noise (no rows to single out), chosen on one split
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROWS", 100)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.uniform(-3, 3, 1_500), "b": rng.uniform(-3, 3, 1_500)})
    frame["y"] = np.sin(frame["a"]) + rng.normal(0, 2.0, 1_500)
    choice = auto_selection.choose(frame, "y", feature_schema(frame, "y"), "regression",
                                   DatasetConfig.from_dict({"target": "y"}))
    # Then the small leaves were tried and lost (or tied within the margin): the recipe's stay
    assert "none with small leaves" in choice.candidates
    assert not auto_selection.clearly_better(choice.candidates["none with small leaves"]["score"],
                                             choice.candidates["none"]["score"], higher_is_better=False)
    assert "min_samples_leaf" not in choice.params and "max_features" not in choice.params


@pytest.mark.parametrize(("score", "than", "higher_is_better", "better"), [
    (98.0, 100.0, False, True),  # RMSE 2 % lower
    (99.5, 100.0, False, False),  # 0.5 %: within the margin
    (0.86, 0.85, True, True),  # accuracy: errors 0.14 vs 0.15, 6.7 % fewer
    (0.8505, 0.85, True, False),  # 0.3 % fewer errors
    (0.84, 0.85, True, False),  # worse
])
def test_clearly_better_asks_for_a_margin_of_the_error(score: float, than: float, higher_is_better: bool,
                                                       better: bool) -> None:
    assert auto_selection.clearly_better(score, than, higher_is_better) is better


def test_text_as_the_boosters_categories_is_kept_where_it_validates_clearly_better_and_exports(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given stores whose slopes differ, chosen on one split (3,000 rows, counted as enough here)
    monkeypatch.setattr(auto_selection, "CATEGORY_MIN_ROWS", 1_000)
    frame = store_sales()
    config = DatasetConfig.from_dict({"target": "sales"})
    choice = auto_selection.choose(frame, "sales", feature_schema(frame, "sales"), "regression", config)
    # Then the store as the booster's category (sets of stores per split) validated clearly better
    categories, codes = choice.candidates["none with text as categories"]["score"], choice.candidates["none"]["score"]
    assert auto_selection.clearly_better(categories, codes, higher_is_better=False) and categories < 0.7 * codes
    assert choice.family == "trees" and choice.booster_params["categorical_features"] == "from_dtype"
    # And the final pipeline's booster splits the store's codes (the first column of its matrix) as sets
    pipeline, test, schema = _fitted(frame, "sales", "regression")
    booster = pipeline.steps[-1][1]
    assert booster.categorical_features == [0]
    pending, splits = [tree["tree_structure"] for tree in booster.model_.booster_.dump_model()["tree_info"]], []
    while pending:
        node = pending.pop()
        if "split_feature" in node:
            splits.append((node["split_feature"], node["decision_type"]))
            pending += [node["left_child"], node["right_child"]]
    assert {kind for feature, kind in splits if feature == 0} == {"=="}
    # and it exports: the graph answers every test row as the pipeline does
    model = export(pipeline, schema, "regression")
    assert verify(model, pipeline, test, schema, "regression").divergent_rows == 0


def test_text_as_categories_is_tried_only_on_many_categories_of_many_rows_one_cheap_split_and_unchosen(
        monkeypatch: pytest.MonkeyPatch) -> None:
    frame = store_sales()
    config = DatasetConfig.from_dict({"target": "sales"})
    # Given the stores' 3,000 rows, fewer than CATEGORY_MIN_ROWS: a few hundred validation rows
    choice = auto_selection.choose(frame, "sales", feature_schema(frame, "sales"), "regression", config)
    assert auto_selection.CATEGORY_MIN_ROWS == 10_000 and not any("categories" in name for name in choice.candidates)
    monkeypatch.setattr(auto_selection, "CATEGORY_MIN_ROWS", 1_000)
    # Given no text column (the store's number instead)
    numbered = frame.assign(store=frame["store"].str.removeprefix("store ").astype(int))
    choice = auto_selection.choose(numbered, "sales", feature_schema(numbered, "sales"), "regression", config)
    assert not any("categories" in name for name in choice.candidates)
    # Given the user's own choice of categorical_features
    fixed = DatasetConfig.from_dict({"target": "sales", "params": {"categorical_features": None}})
    choice = auto_selection.choose(frame, "sales", feature_schema(frame, "sales"), "regression", fixed)
    assert not any("categories" in name for name in choice.candidates) and choice.params["categorical_features"] is None
    # Given text of 20 stores (a few categories: their codes in order serve), or of 2,000 (a key:
    # 1.5 rows each)
    for count in (20, 2_000):
        few = store_sales(stores=count)
        choice = auto_selection.choose(few, "sales", feature_schema(few, "sales"), "regression", config)
        assert not any("categories" in name for name in choice.candidates)
    # Given a fit that would boost more than CATEGORY_ROW_TREE_ROUNDS
    monkeypatch.setattr(auto_selection, "CATEGORY_ROW_TREE_ROUNDS", 1_000)
    choice = auto_selection.choose(frame, "sales", feature_schema(frame, "sales"), "regression", config)
    assert not any("categories" in name for name in choice.candidates)
    # Given a table small enough to choose on cross-validation folds
    monkeypatch.setattr(auto_selection, "CATEGORY_ROW_TREE_ROUNDS", 16_000_000)
    monkeypatch.setattr(auto_selection, "CROSS_VALIDATION_ROWS", 5_000)
    choice = auto_selection.choose(frame, "sales", feature_schema(frame, "sales"), "regression", config)
    assert choice.folds == auto_selection.FOLDS and not any("categories" in name for name in choice.candidates)


def test_text_as_categories_that_validates_no_clearly_better_leaves_the_ordered_codes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 60 stores that only shift the level (one order of the stores says all there is)
    monkeypatch.setattr(auto_selection, "CATEGORY_MIN_ROWS", 1_000)
    rng = np.random.default_rng(3)
    store, x = rng.integers(0, 60, 3000), rng.normal(0, 1, 3000)
    frame = pd.DataFrame({"store": [f"store {k}" for k in store], "x": x, "other": rng.normal(0, 1, 3000)})
    frame["sales"] = rng.normal(0, 1, 60)[store] + np.sin(2 * x) + rng.normal(0, 0.5, 3000)
    choice = auto_selection.choose(frame, "sales", feature_schema(frame, "sales"), "regression",
                                   DatasetConfig.from_dict({"target": "sales"}))
    # Then the categories were tried and won by less than the margin (0.7 % here): the codes stay
    tried = choice.candidates["none with text as categories"]["score"]
    assert tried < choice.candidates["none"]["score"]
    assert not auto_selection.clearly_better(tried, choice.candidates["none"]["score"], higher_is_better=False)
    assert "categorical_features" not in choice.booster_params and "categorical_features" not in choice.params


def test_the_users_from_dtype_makes_the_validation_fits_categories_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a config that asks for the text as the booster's categories itself
    frame = store_sales(rows=1_600)
    config = DatasetConfig.from_dict({"target": "sales", "params": {"categorical_features": "from_dtype"}})
    made = recorded_params(monkeypatch, auto_selection)
    choice = auto_selection.choose(frame, "sales", feature_schema(frame, "sales"), "regression", config)
    # Then the rounds were chosen on boosters that split the store's codes as sets, as the final
    # fit's will (the config's value stays in the params build_pipeline reads)
    assert made and all(params["categorical_features"] == [0] for params in made)
    assert choice.params["categorical_features"] == "from_dtype"


def test_a_table_of_fewer_than_fifty_rows_chooses_on_cross_validation_folds() -> None:
    # Given 36 training rows split by one number: the defaults' leaves of 20 rows cannot split them
    frame = pd.DataFrame({"x": np.arange(1, 46, dtype=float), "y": (np.arange(1, 46) > 18).astype(int)})
    config = DatasetConfig.from_dict({"target": "y", "split": {"test_size": 0.2, "seed": 3}})
    train, test = split(frame, "y", "classification", config)
    schema = feature_schema(train, "y")
    assert len(train) < auto_selection.MIN_TRAINING_ROWS
    # When the auto recipe fits them
    fitted = fit_recorded(train, "y", schema, "classification", config)
    # Then it chose on three folds, and a family that splits them
    assert fitted.auto_choice["folds"] == auto_selection.FOLDS
    assert fitted.auto_choice["family"] != "trees"
    predicted = fitted.pipeline.predict(to_model_frame(test, schema))
    assert (predicted == class_labels(test["y"]).to_numpy()).mean() >= 0.85
