"""stepml.booster: LightGBM under HistGradientBoosting's parameter names and behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from stepml.booster import BoostedTreesClassifier, BoostedTreesRegressor
from stepml.config import DatasetConfig
from stepml.errors import ConfigError
from stepml.recipes import check_params


def _classes(rows: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    score = x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 1, rows)
    return x, np.where(score > 1, "high", np.where(score > -1, "mid", "low"))


def test_it_takes_and_clones_histgradientboostings_parameter_names() -> None:
    model = BoostedTreesClassifier(max_iter=7, max_leaf_nodes=15, min_samples_leaf=5, l2_regularization=0.5,
                                   max_bins=63, max_features=0.8, class_weight="balanced", random_state=3)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    x, y = _classes()
    fitted = copy.fit(x, y)
    settings = fitted.model_.get_params()
    assert (settings["n_estimators"], settings["num_leaves"], settings["min_child_samples"]) == (7, 15, 5)
    assert (settings["reg_lambda"], settings["max_bin"], settings["feature_fraction_bynode"]) == (0.5, 63, 0.8)
    assert fitted.n_iter_ == 7


def test_a_config_param_out_of_its_range_is_refused_with_histgradientboostings_words() -> None:
    config = DatasetConfig.from_dict({"target": "y", "params": {"learning_rate": -1, "max_leaf_nodes": 1}})
    with pytest.raises(ConfigError, match="params.learning_rate must be .*BoostedTreesClassifier.*params.max_leaf_nodes"):
        check_params(config, "classification")
    wrong_loss = DatasetConfig.from_dict({"target": "y", "params": {"loss": "hinge"}})
    with pytest.raises(ConfigError, match="params.loss must be .*BoostedTreesRegressor"):
        check_params(wrong_loss, "regression")


def test_early_stopping_reads_the_validation_loss_after_every_round_and_predicts_at_any_round() -> None:
    # Given labels as text and a separate validation set
    x, y = _classes(900)
    model = BoostedTreesClassifier(max_iter=500, learning_rate=0.1, early_stopping=True, n_iter_no_change=15, tol=0.0,
                                   random_state=0)
    model.fit(x[:600], y[:600], X_val=x[600:], y_val=y[600:])
    # Then the curve has one loss per round boosted plus round 0, which is never the best: it
    # stopped 15 rounds past its best, and the model keeps the trees up to its best round
    losses = -model.validation_score_
    assert np.isinf(losses[0])
    best = int(np.argmin(losses))
    assert best >= 1 and len(losses) - 1 - best == 15 and model.n_iter_ == best
    # and its predictions after the best round are LightGBM's there, with the labels as classes
    assert list(model.classes_) == ["high", "low", "mid"]
    proba = model.predict_proba(x[600:], rounds=best)
    np.testing.assert_allclose(proba, model.model_.predict_proba(x[600:], num_iteration=best))
    validation_loss = -np.mean(np.log(proba[np.arange(300), np.searchsorted(model.classes_, y[600:])]))
    assert validation_loss == pytest.approx(losses[best], rel=1e-6)
    assert set(model.predict(x[600:])) <= {"high", "low", "mid"}


def test_early_stopping_without_a_validation_set_holds_out_a_fraction() -> None:
    x, y = _classes(1000)
    model = BoostedTreesClassifier(max_iter=300, early_stopping=True, validation_fraction=0.2, random_state=0).fit(x, y)
    assert model.n_iter_ == int(np.argmax(model.validation_score_)) < len(model.validation_score_) - 1 < 300


def test_early_stopping_auto_stops_only_above_ten_thousand_rows_as_histgradientboosting() -> None:
    x, y = _classes(1000)
    assert BoostedTreesClassifier(max_iter=300, early_stopping="auto", random_state=0).fit(x, y).n_iter_ == 300
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(10_001, 2))
    noise = rng.normal(size=10_001) > 0  # nothing to learn: the held-out loss stops it early
    assert BoostedTreesClassifier(max_iter=300, early_stopping="auto", random_state=0).fit(wide, noise).n_iter_ < 300


def test_a_class_weight_keyed_by_labels_weighs_those_classes() -> None:
    x, y = _classes(900, seed=2)
    plain = BoostedTreesClassifier(max_iter=30, random_state=0).fit(x, y)
    weighted = BoostedTreesClassifier(max_iter=30, class_weight={"low": 5.0}, random_state=0).fit(x, y)
    assert np.mean(weighted.predict(x) == "low") > np.mean(plain.predict(x) == "low") + 0.05


def test_a_class_weight_keyed_by_text_weighs_the_numeric_labels_it_spells() -> None:
    # Given numeric labels, and weights as YAML or JSON gives them: text keys, one naming no label
    x, y = _classes(900, seed=2)
    numbers = np.where(y == "low", 8, 3)
    plain = BoostedTreesClassifier(max_iter=30, random_state=0).fit(x, numbers)
    weighted = BoostedTreesClassifier(max_iter=30, class_weight={"8": 5.0, "7": 2.0}, random_state=0).fit(x, numbers)
    # Then the label 8 (LightGBM's code 1) is weighed as the key "8" says; the unknown key is ignored
    assert weighted._code_weights() == {1: 5.0}
    assert np.mean(weighted.predict(x) == 8) > np.mean(plain.predict(x) == 8) + 0.05


def test_many_weighted_classes_at_a_high_rate_boost_without_running_away() -> None:
    # Given airports' coordinates and their state (vega_datasets: 50+ classes, some of 3 rows), classes
    # weighted, at auto's rate for costly rounds: near-zero hessians made leaf steps of hundreds
    import importlib.util
    from pathlib import Path

    import pandas as pd
    from sklearn.model_selection import train_test_split

    spec = importlib.util.find_spec("vega_datasets")  # its data file, without importing the package
    assert spec is not None and spec.origin is not None
    airports = pd.read_csv(Path(spec.origin).parent / "_data" / "airports.csv").dropna(subset=["state"])
    counts = airports["state"].value_counts()
    airports = airports[airports["state"].isin(counts[counts >= 3].index)]
    x_fit, x_val, y_fit, y_val = train_test_split(airports[["latitude", "longitude"]].to_numpy(),
                                                  airports["state"].to_numpy(), test_size=0.2, random_state=0,
                                                  stratify=airports["state"])
    model = BoostedTreesClassifier(max_iter=60, learning_rate=0.2, max_leaf_nodes=63, class_weight="balanced",
                                   early_stopping=True, n_iter_no_change=60, random_state=0)
    model.fit(x_fit, y_fit, X_val=x_val, y_val=y_val)
    # Then the validation loss falls well past the first rounds (uncapped: lowest at round 1, then
    # over 30) and 60 rounds still place nine airports in ten in their state (uncapped: 0.06)
    losses = -model.validation_score_[1:]
    assert int(np.argmin(losses)) >= 5 and losses.max() < 5
    assert np.mean(model.predict(x_val, rounds=60) == y_val) > 0.9


def test_a_target_that_cannot_be_fitted_is_a_value_error() -> None:
    x = np.arange(30.0).reshape(-1, 1)
    # LightGBM's own refusal mid-fit too: the caller explains a ValueError as this data's problem
    with pytest.raises(ValueError, match="LightGBM: .*negative"):
        BoostedTreesRegressor(max_iter=5, loss="poisson").fit(x, np.arange(30.0) - 3)
    with pytest.raises(ValueError, match="infinity"):
        BoostedTreesRegressor(max_iter=5).fit(x, [1.0] * 29 + [np.inf])
    with pytest.raises(ValueError, match="class that the training rows do not"):
        BoostedTreesClassifier(max_iter=5, early_stopping=True).fit(x, ["a", "b"] * 15, X_val=x[:2], y_val=["a", "c"])


@pytest.mark.parametrize(("loss", "objective"), [("squared_error", "regression"), ("absolute_error", "regression_l1"),
                                                 ("poisson", "poisson")])
def test_a_regression_loss_is_lightgbms_objective(loss: str, objective: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 3))
    y = np.exp(0.5 * x[:, 0] + rng.normal(0, 0.3, 400))
    model = BoostedTreesRegressor(loss=loss, max_iter=40, random_state=0).fit(x, y)
    assert model.model_.get_params()["objective"] == objective
    predictions = model.predict(x)
    assert np.corrcoef(predictions, y)[0, 1] > 0.7
    if loss == "poisson":
        assert predictions.min() > 0


def _groups(rows: int = 2000, groups: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``groups`` categories (column 0) whose effect has no order, and a number (column 1)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, groups, rows).astype(float)
    x = np.c_[codes, rng.normal(size=rows)]
    return x, rng.normal(0, 3, groups)[codes.astype(int)] + x[:, 1] + rng.normal(0, 0.3, rows)


def _split_kinds(model: BoostedTreesRegressor) -> set[tuple[int, str]]:
    kinds, pending = set(), [tree["tree_structure"] for tree in model.model_.booster_.dump_model()["tree_info"]]
    while pending:
        node = pending.pop()
        if "split_feature" in node:
            kinds.add((node["split_feature"], node["decision_type"]))
            pending += [node["left_child"], node["right_child"]]
    return kinds


@pytest.mark.parametrize("chosen", [[0], np.array([True, False])])
def test_categorical_features_are_split_as_lightgbms_categories(chosen: object) -> None:
    # Given a column of category codes, named by index or by a boolean mask
    x, y = _groups()
    model = BoostedTreesRegressor(max_iter=30, categorical_features=chosen).fit(x, y)
    # Then column 0 is split by sets of codes ("=="), column 1 by thresholds
    assert _split_kinds(model) == {(0, "=="), (1, "<=")}
    assert np.array_equal(clone(model).get_params()["categorical_features"], chosen)  # type: ignore[arg-type]
    # And a code it never saw, a negative one or a missing one goes where LightGBM sends it
    odd = np.array([[99.0, 0.0], [-1.0, 0.0], [np.nan, 0.0]])
    assert np.isfinite(model.predict(odd)).all()


@pytest.mark.parametrize("chosen", [None, "from_dtype", []])
def test_without_categorical_features_codes_are_cut_by_threshold(chosen: object) -> None:
    # "from_dtype" on a matrix: no dtypes to read (build_pipeline replaces it with the text columns)
    x, y = _groups()
    assert _split_kinds(BoostedTreesRegressor(max_iter=30, categorical_features=chosen).fit(x, y)) == {
        (0, "<="), (1, "<=")}


def test_categorical_features_outside_the_matrix_are_a_value_error() -> None:
    x, y = _groups(rows=200)
    with pytest.raises(ValueError, match="index outside 0..1"):
        BoostedTreesRegressor(max_iter=5, categorical_features=[2]).fit(x, y)
    with pytest.raises(ValueError, match="mask has 3 entries for 2 columns"):
        BoostedTreesRegressor(max_iter=5, categorical_features=[True, False, True]).fit(x, y)
    config = DatasetConfig.from_dict({"target": "y", "params": {"categorical_features": "text"}})
    with pytest.raises(ConfigError, match="params.categorical_features must be"):
        check_params(config, "regression")


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_an_output_offset_shifts_the_score_before_the_losss_link(loss: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = np.exp(X[:, 0]) + rng.random(400)
    plain = BoostedTreesRegressor(loss=loss, max_iter=20).fit(X, y).predict(X)
    shifted = BoostedTreesRegressor(loss=loss, max_iter=20, output_offset=0.5).fit(X, y).predict(X)
    if loss == "squared_error":
        np.testing.assert_allclose(shifted - plain, 0.5, rtol=1e-12)
    else:  # a log link: exp(score + 0.5)
        np.testing.assert_allclose(shifted / plain, np.exp(0.5), rtol=1e-12)


def test_an_output_offset_must_be_a_finite_number() -> None:
    X, y = np.arange(40.0).reshape(20, 2), np.arange(20.0)
    with pytest.raises(ValueError, match="output_offset must be a finite number"):
        BoostedTreesRegressor(output_offset=float("inf")).fit(X, y)
    config = DatasetConfig.from_dict({"target": "y", "params": {"output_offset": "a lot"}})
    with pytest.raises(ConfigError, match="params.output_offset must be"):
        check_params(config, "regression")


def test_the_log_link_losses_are_validations() -> None:
    from stepml import booster, validation

    assert booster.LOG_LINK_LOSSES == set(validation.LOG_LINK_LOSSES)
